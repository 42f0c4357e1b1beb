package ssh

import (
	"net"
	"time"

	"golang.org/x/crypto/ssh"
)

// keepalive probes the connection every interval and closes it when no
// reply arrived for window. x/crypto/ssh has no keepalive of its own, and a
// read from a frozen peer (a stopped sshd, a black-holed route) blocks
// forever: closing the net.Conn is what unblocks every session on it, so
// their jobs fail over to a resumed run instead of hanging.
//
// It returns when done is closed or the connection fails.
func keepalive(c *ssh.Client, nc net.Conn, interval, window time.Duration, done <-chan struct{}, onDead func()) {
	deadline := time.AfterFunc(window, func() {
		onDead()
		_ = nc.Close()
	})
	defer deadline.Stop()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return
		case <-tick.C:
		}
		// OpenSSH answers an unknown global request with a failure
		// message: any answer proves the peer alive.
		if _, _, err := c.SendRequest("keepalive@openssh.com", true, nil); err != nil {
			return
		}
		if !deadline.Reset(window) {
			return // already declared dead
		}
	}
}
