package ssh

import (
	"cmp"
	"context"
	"net"
	"slices"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/cronium/orchestrator/executors"
)

// pool keeps connections per (address, user, credentials). A job takes its
// slots (a lease) on one connection for its whole run: one per session it
// holds open at once, so that slots count the job's channels on the server
// and stay under sshd's MaxSessions. A new connection is dialed only when
// no connection has room, up to MaxConnsPerServer per address (whatever
// the credentials); beyond that jobs wait for slots.
type pool struct {
	opts     Options
	hk       *hostKeys
	breakers *breakers

	// ctx ends when the pool closes; it aborts dials in progress.
	ctx  context.Context
	stop context.CancelCauseFunc

	mu      sync.Mutex
	entries map[poolKey]*entry
	servers map[string]*server
	closed  bool
	// wg tracks dials in progress and every connection's watcher and
	// keepalive goroutines.
	wg sync.WaitGroup
}

type poolKey struct{ addr, user, cred string }

// server is what the pool knows about one address across credentials.
type server struct {
	// open counts connections open or being dialed.
	open    int
	entries []*entry
	// changed is closed (and replaced) whenever a slot may have freed.
	changed chan struct{}
}

func (s *server) notify() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// entry is one (server, user, credentials). It is dropped when it has
// no connection and no dial in progress, so that the pool does not keep
// every credential it ever used (decrypted keys) in memory.
type entry struct {
	key   poolKey
	s     *server
	srv   executors.Server
	conns []*conn
	// dialing counts dials in progress for the entry.
	dialing int

	credMu sync.Mutex
	creds  *credentials
}

type conn struct {
	e        *entry
	client   *ssh.Client
	sessions int
	idle     *time.Timer
	// idleSince is when the last job slot on the connection was released;
	// zero while a job holds one. A background slot (tryAcquire) keeps it,
	// so that background work does not keep an idle connection open.
	idleSince time.Time
	gone      bool
	// done is closed once the connection is out of the pool.
	done chan struct{}
}

func newPool(opts Options, hk *hostKeys) *pool {
	ctx, stop := context.WithCancelCause(context.Background())
	return &pool{opts: opts, hk: hk, breakers: newBreakers(opts), ctx: ctx, stop: stop,
		entries: map[poolKey]*entry{}, servers: map[string]*server{}}
}

// credentials parses the server's key once per entry and caches only
// success, so a fixed key is picked up by the next job.
func (e *entry) credentials(opts Options) (*credentials, error) {
	e.credMu.Lock()
	defer e.credMu.Unlock()
	if e.creds != nil {
		return e.creds, nil
	}
	var sock *string
	if opts.UseAgent {
		sock = &opts.AgentSocket
	}
	c, err := newCredentials(e.srv, sock, opts.Logger)
	if err == nil {
		e.creds = c
	}
	return c, err
}

// acquire takes a slot for srv, for work that opens one session at a time.
func (p *pool) acquire(ctx context.Context, srv executors.Server, bypassBreaker bool) (*lease, error) {
	return p.acquireN(ctx, srv, bypassBreaker, 1)
}

// acquireN takes n slots for srv on one connection, dialing when none has
// room. Dials go through the server's circuit breaker unless
// bypassBreaker: a resumed run reconnects to a job that is running out
// there, and must get through as soon as the server is back, not when the
// breaker next probes.
func (p *pool) acquireN(ctx context.Context, srv executors.Server, bypassBreaker bool, n int) (*lease, error) {
	key := poolKey{srv.Address(), srv.Username, credentialID(srv)}
	// More slots than a connection has would be waited for forever: the
	// job takes them all, and its extra session uses the room that
	// MaxSessionsPerConn leaves below sshd's MaxSessions.
	n = min(n, p.opts.MaxSessionsPerConn)
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, ErrClosed
		}
		e := p.entryFor(key, srv)
		if c := p.freeConn(e, n); c != nil {
			p.take(c, n)
			p.mu.Unlock()
			return &lease{p: p, c: c, n: n}, nil
		}
		evicted := p.evictIdle(e)
		if e.s.open < p.opts.MaxConnsPerServer {
			e.s.open++
			e.dialing++
			p.wg.Add(1) // under p.mu: close waits for the dial
			p.mu.Unlock()
			if evicted != nil {
				_ = evicted.client.Close()
			}
			return p.dialInto(ctx, e, bypassBreaker, n)
		}
		ch := e.s.changed
		p.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}
}

// tryAcquire takes a background slot for srv on a connection that is open
// and has room. It never dials and never waits: background work must not
// compete with jobs for connections.
func (p *pool) tryAcquire(srv executors.Server) *lease {
	key := poolKey{srv.Address(), srv.Username, credentialID(srv)}
	p.mu.Lock()
	defer p.mu.Unlock()
	e := p.entries[key]
	if p.closed || e == nil {
		return nil
	}
	c := p.freeConn(e, 1)
	if c == nil {
		return nil
	}
	p.takeBackground(c, 1)
	return &lease{p: p, c: c, n: 1}
}

// live lists, once per address and user, a server the pool has an open
// connection to, with the credentials of that connection.
func (p *pool) live() []executors.Server {
	p.mu.Lock()
	defer p.mu.Unlock()
	seen := map[[2]string]bool{}
	var out []executors.Server
	for _, e := range p.entries {
		k := [2]string{e.key.addr, e.key.user}
		if len(e.conns) > 0 && !seen[k] {
			seen[k] = true
			out = append(out, e.srv)
		}
	}
	slices.SortFunc(out, func(a, b executors.Server) int {
		return cmp.Or(cmp.Compare(a.Address(), b.Address()), cmp.Compare(a.Username, b.Username))
	})
	return out
}

func (p *pool) entryFor(key poolKey, srv executors.Server) *entry {
	e := p.entries[key]
	if e == nil {
		s := p.servers[key.addr]
		if s == nil {
			s = &server{changed: make(chan struct{})}
			p.servers[key.addr] = s
		}
		e = &entry{key: key, s: s, srv: srv}
		s.entries = append(s.entries, e)
		p.entries[key] = e
	}
	return e
}

// evictIdle makes room for e at a server at its connection cap by taking
// out an idle connection that another user or key holds there; the caller
// closes it once p.mu is released. p.mu is held.
func (p *pool) evictIdle(e *entry) *conn {
	if e.s.open < p.opts.MaxConnsPerServer {
		return nil
	}
	for _, other := range e.s.entries {
		for _, c := range other.conns {
			if other != e && c.sessions == 0 {
				p.detach(c)
				return c
			}
		}
	}
	return nil
}

// freeConn picks the busiest connection that still has room for n slots,
// so that spare connections run idle and get closed.
func (p *pool) freeConn(e *entry, n int) *conn {
	var best *conn
	for _, c := range e.conns {
		if c.sessions+n <= p.opts.MaxSessionsPerConn && (best == nil || c.sessions > best.sessions) {
			best = c
		}
	}
	return best
}

func (p *pool) take(c *conn, n int) {
	c.idleSince = time.Time{}
	p.takeBackground(c, n)
}

// takeBackground takes slots on c that do not count as use of it.
func (p *pool) takeBackground(c *conn, n int) {
	c.sessions += n
	if c.idle != nil {
		c.idle.Stop()
		c.idle = nil
	}
	p.opts.Observer.Sessions(c.e.key.addr, n)
}

// dialInto dials a connection for e and takes n slots on it. acquireN
// counted the dial in p.wg; closing the pool aborts it.
func (p *pool) dialInto(ctx context.Context, e *entry, bypassBreaker bool, n int) (*lease, error) {
	defer p.wg.Done()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	defer context.AfterFunc(p.ctx, func() { cancel(ErrClosed) })()
	addr := e.key.addr
	dial := func() (*conn, error) {
		client, nc, err := p.dial(ctx, e)
		if err != nil {
			return nil, err
		}
		return p.track(e, client, nc), nil
	}
	var c *conn
	var err error
	if bypassBreaker {
		c, err = dial()
	} else {
		c, err = p.breakers.connect(addr, dial)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	e.dialing--
	e.s.notify()
	if err != nil {
		e.s.open--
		p.forget(e)
		if p.closed {
			return nil, ErrClosed
		}
		p.opts.Observer.ConnectFailed(addr, errClass(err))
		return nil, err
	}
	if p.closed || c.gone {
		p.detach(c)
		_ = c.client.Close()
		if p.closed {
			return nil, ErrClosed
		}
		return nil, errorf(ErrUnreachable, "ssh: %s: connection closed right after the handshake", addr)
	}
	e.conns = append(e.conns, c)
	p.take(c, n)
	return &lease{p: p, c: c, n: n}, nil
}

// track starts the goroutines that watch a new connection: its keepalive,
// and a waiter that takes it out of the pool when it ends.
func (p *pool) track(e *entry, client *ssh.Client, nc net.Conn) *conn {
	c := &conn{e: e, client: client, done: make(chan struct{})}
	p.opts.Observer.Connections(e.key.addr, 1)
	p.opts.Logger.Debug("ssh: connected", "server", e.key.addr, "user", e.srv.Username)
	p.wg.Add(2)
	go func() {
		defer p.wg.Done()
		keepalive(client, nc, p.opts.KeepaliveInterval, p.opts.keepaliveWindow(), c.done, func() {
			p.opts.Logger.Warn("ssh: connection unresponsive, closing it", "server", e.key.addr,
				"silent_for", p.opts.keepaliveWindow())
		})
	}()
	go func() {
		defer p.wg.Done()
		err := client.Wait()
		p.remove(c)
		p.opts.Logger.Debug("ssh: connection closed", "server", e.key.addr, "err", err)
	}()
	return c
}

// remove takes c out of the pool and closes it.
func (p *pool) remove(c *conn) {
	p.mu.Lock()
	p.detach(c)
	p.mu.Unlock()
	_ = c.client.Close()
}

// detach takes c out of the pool; waiting jobs are woken so that they can
// dial a replacement. p.mu is held.
func (p *pool) detach(c *conn) {
	if c.gone {
		return
	}
	c.gone = true
	close(c.done)
	if c.idle != nil {
		c.idle.Stop()
	}
	e := c.e
	for i, x := range e.conns {
		if x == c {
			e.conns = append(e.conns[:i], e.conns[i+1:]...)
			break
		}
	}
	e.s.open--
	e.s.notify()
	p.forget(e)
	p.opts.Observer.Connections(e.key.addr, -1)
}

// forget drops e once it has no connection and no dial in progress, and
// its server once that has no entry left. Jobs waiting on the server were
// woken already (notify) and look it up again. p.mu is held.
func (p *pool) forget(e *entry) {
	if len(e.conns) > 0 || e.dialing > 0 || p.entries[e.key] != e {
		return
	}
	delete(p.entries, e.key)
	e.s.entries = slices.DeleteFunc(e.s.entries, func(x *entry) bool { return x == e })
	if len(e.s.entries) == 0 && p.servers[e.key.addr] == e.s {
		delete(p.servers, e.key.addr)
	}
}

func (p *pool) release(c *conn, n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c.sessions -= n
	p.opts.Observer.Sessions(c.e.key.addr, -n)
	if c.gone {
		return
	}
	if c.sessions == 0 {
		if c.idleSince.IsZero() {
			c.idleSince = time.Now()
		}
		c.idle = time.AfterFunc(p.opts.IdleTimeout-time.Since(c.idleSince), func() { p.closeIdle(c) })
	}
	c.e.s.notify()
}

// closeIdle closes c if it is still idle when its timer fires; the check
// and the detach happen under one lock so that no job takes it meanwhile.
func (p *pool) closeIdle(c *conn) {
	p.mu.Lock()
	idle := c.sessions == 0 && !c.gone
	if idle {
		p.detach(c)
	}
	p.mu.Unlock()
	if idle {
		_ = c.client.Close()
	}
}

// close aborts dials in progress, closes every connection and waits for
// their goroutines.
func (p *pool) close() {
	p.mu.Lock()
	p.closed = true
	var all []*conn
	for _, e := range p.entries {
		all = append(all, e.conns...)
	}
	p.mu.Unlock()
	p.stop(ErrClosed)
	for _, c := range all {
		p.remove(c)
	}
	p.wg.Wait()
}
