package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/cronium/orchestrator/admin"
	"github.com/cronium/orchestrator/httpapi"
)

// listeners are http.listen and admin.listen, bound before the actors
// start so that a port in use fails Start before any job is claimed.
type listeners struct{ http, admin net.Listener }

func (l listeners) close() {
	for _, ln := range []net.Listener{l.http, l.admin} {
		if ln != nil {
			_ = ln.Close()
		}
	}
}

// bindListeners binds each configured address; "" disables a listener.
func (d *Daemon) bindListeners() (listeners, error) {
	var lns listeners
	if addr := d.cfg.HTTP.Listen; addr != "" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return lns, fmt.Errorf("http.listen: %w", err)
		}
		lns.http = ln
	}
	if addr := d.cfg.Admin.Listen; addr != "" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			lns.close()
			return listeners{}, fmt.Errorf("admin.listen: %w", err)
		}
		lns.admin = ln
	}
	return lns, nil
}

// serve starts a server on each bound listener; Shutdown stops them once
// the actors have stopped, so that /metrics and the admin API can be
// watched during the drain.
func (d *Daemon) serve(lns listeners) {
	if lns.http != nil {
		d.httpAddr = lns.http.Addr().String()
		h := httpapi.New(httpapi.Options{Gatherer: d.registry, Checks: d.readinessChecks()})
		d.startServer(lns.http, h, "metrics and health")
	}
	if lns.admin != nil {
		d.adminAddr = lns.admin.Addr().String()
		h := admin.New(admin.Options{Engine: d.engine, Supervisor: d.supervisor, Listen: d.cfg.Admin.Listen,
			Token: d.cfg.Admin.Token, Timeout: d.adminWait, OrchestratorID: d.id, Version: d.version, Logger: d.log})
		d.startServer(lns.admin, h, "admin API and status page")
	}
}

func (d *Daemon) startServer(ln net.Listener, h http.Handler, what string) {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(d.log.Handler(), slog.LevelWarn)}
	d.servers = append(d.servers, srv)
	log := d.log
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http server failed", "serving", what, "err", err)
		}
	}()
	d.log.Info("listening", "serving", what, "addr", ln.Addr().String())
}

// readinessChecks: the orchestrator can work when it is not shutting
// down, the backend answers, and Docker does if container jobs are on.
func (d *Daemon) readinessChecks() []httpapi.Check {
	checks := []httpapi.Check{
		{Name: "orchestrator", Probe: func(context.Context) error {
			if d.draining.Load() {
				return errors.New("shutting down")
			}
			return nil
		}},
		{Name: "backend", Probe: d.client.Health},
	}
	if d.executors.docker != nil {
		checks = append(checks, httpapi.Check{Name: "docker", Probe: d.executors.docker.Ping})
	}
	return checks
}

// HTTPAddr and AdminAddr are where the listeners are bound ("" when
// disabled); with port 0 in the configuration, the port picked.
func (d *Daemon) HTTPAddr() string  { return d.httpAddr }
func (d *Daemon) AdminAddr() string { return d.adminAddr }
