package ssh

import (
	"errors"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// lease is a job's slots on a pooled connection: n sessions open at once.
type lease struct {
	p    *pool
	c    *conn
	n    int
	once sync.Once
}

func (l *lease) release() { l.once.Do(func() { l.p.release(l.c, l.n) }) }

// newSession opens a session under the lease. sshd refuses a session
// beyond MaxSessions with an open-channel failure; that passes as soon as
// a closed session is collected, so it is retried briefly.
func (l *lease) newSession() (*ssh.Session, error) {
	for attempt := 0; ; attempt++ {
		s, err := l.c.client.NewSession()
		var refused *ssh.OpenChannelError
		if err == nil || !errors.As(err, &refused) || attempt == 5 {
			return s, err
		}
		l.p.opts.Logger.Debug("ssh: server refused a session, retrying", "server", l.c.e.key.addr, "err", err)
		time.Sleep(20 * time.Millisecond << attempt)
	}
}

// endSession closes s and waits one round trip. sshd frees a closed
// session only after it handled the whole batch of packets the close came
// in, so a session opened right behind the close can still count against
// MaxSessions; the round trip orders the next open after the free.
func (l *lease) endSession(s *ssh.Session) {
	_ = s.Close()
	_, _, _ = l.c.client.SendRequest("keepalive@openssh.com", true, nil)
}

// check is called when a session on the lease failed, and reports whether
// the connection is still up. A session can fail on a healthy connection
// (the remote command died), so the connection is probed rather than
// dropped; a dead one leaves the pool now instead of when its reader
// notices, so that the resumed run does not pick it again.
func (l *lease) check() bool {
	select {
	case <-l.c.done:
		return false
	default:
	}
	replied := make(chan error, 1)
	go func() {
		_, _, err := l.c.client.SendRequest("keepalive@openssh.com", true, nil)
		replied <- err
	}()
	t := time.NewTimer(l.p.opts.KeepaliveInterval)
	defer t.Stop()
	select {
	case err := <-replied:
		if err == nil {
			return true
		}
	case <-t.C:
	}
	l.p.remove(l.c)
	return false
}
