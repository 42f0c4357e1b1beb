package ssh

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/cronium/orchestrator/executors"
)

// address is host:port for dialing and known_hosts. Unlike
// executors.Server.Address it brackets IPv6 literals.
func address(srv executors.Server) string {
	port := srv.Port
	if port == 0 {
		port = 22
	}
	host := strings.TrimSuffix(strings.TrimPrefix(srv.Host, "["), "]")
	return net.JoinHostPort(host, strconv.Itoa(port))
}

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
	cfg := &ssh.ClientConfig{
		User:              e.srv.Username,
		Auth:              methods,
		HostKeyCallback:   p.hk.callback(addr, e.srv.HostKeyFingerprints, func() { hostKeyDone.Store(true) }),
		HostKeyAlgorithms: p.hk.algorithms(addr, e.srv.HostKeyFingerprints),
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
