package ssh

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"
)

// errCtxDone marks a connect that stopped because its context ended.
var errCtxDone = errors.New("connect abandoned")

// dial opens an authenticated connection to e's server: TCP connect within
// DialTimeout, then key exchange and authentication within
// HandshakeTimeout, both abandoned as soon as ctx ends.
func (p *pool) dial(ctx context.Context, e *entry) (*ssh.Client, net.Conn, error) {
	creds, err := e.credentials(p.opts)
	if err != nil {
		return nil, nil, err
	}
	addr := e.key.addr
	d := net.Dialer{Timeout: p.opts.DialTimeout}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil, fmt.Errorf("ssh: connect to %s: %w: %w", addr, errCtxDone, context.Cause(ctx))
		}
		return nil, nil, classifyDial(addr, err)
	}
	_ = nc.SetDeadline(time.Now().Add(p.opts.HandshakeTimeout))
	// ssh.NewClientConn takes no context: a past deadline aborts it.
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	var hostKeyDone atomic.Bool
	methods, release := creds.methods()
	hc := p.hk.forDial(addr, e.srv.HostKeyFingerprints)
	cfg := &ssh.ClientConfig{
		User:              e.srv.Username,
		Auth:              methods,
		HostKeyCallback:   hc.callback(func() { hostKeyDone.Store(true) }),
		HostKeyAlgorithms: hc.algorithms(),
	}
	c, chans, reqs, err := ssh.NewClientConn(nc, addr, cfg)
	release()
	if !stop() {
		if err == nil {
			_ = c.Close()
		}
		return nil, nil, fmt.Errorf("ssh: connect to %s: %w: %w", addr, errCtxDone, context.Cause(ctx))
	}
	if err != nil {
		return nil, nil, classifyHandshake(addr, err, hostKeyDone.Load())
	}
	_ = nc.SetDeadline(time.Time{})
	return ssh.NewClient(c, chans, reqs), nc, nil
}
