// Package jobspec turns a job as the backend sends it into a plan: which
// executor runs it, the executor's Spec, and the execution records to
// create. It is pure: no I/O, so every conversion is table-tested.
package jobspec

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cronium/orchestrator/backend"
	"github.com/cronium/orchestrator/executors"
	"github.com/cronium/orchestrator/secret"
)

// Kind names the executor a job needs.
type Kind string

const (
	KindContainer Kind = "container"
	KindSSH       Kind = "ssh"
	KindHTTP      Kind = "http"
)

// Plan is how one job will run.
type Plan struct {
	Kind Kind
	Spec executors.Spec
	// Executions are the execution records to create: one, or one per
	// server of a multi-server job.
	Executions []Execution
}

// Execution is one execution record.
type Execution struct {
	ID         string
	ServerID   string
	ServerName string
}

// ErrNeedsCredentials means the job targets a server by id only; its
// details must be fetched (GET /servers/{id}/credentials) and the job
// built again with them.
var ErrNeedsCredentials = errors.New("server details missing")

// MaxTimeout is the longest a job may run: a longer timeout (the backend
// sends nanoseconds, so 100 years is only a large number) is cut to it.
// Past it, a job is as good as without one; the bound keeps every
// deadline derived from it (the container's own backstop, the SSH
// watchdog's) far from overflowing.
const MaxTimeout = 30 * 24 * time.Hour

// NewExecutionID returns an execution id for a job, unique per call
// (exec_<jobId>_<unixnano>, at most 100 characters as the backend allows).
func NewExecutionID(jobID string, now time.Time) string {
	id := fmt.Sprintf("exec_%s_%d", jobID, now.UnixNano())
	if len(id) > 100 {
		id = id[len(id)-100:]
		for len(id) > 0 && !utf8.RuneStart(id[0]) { // not mid-character: ids travel in JSON
			id = id[1:]
		}
	}
	return id
}

// Build plans a job. Errors wrap executors.ErrInvalidSpec and say, in words
// a user reads, why the job cannot run.
//
// The job's timeout: none (0) is defaultTimeout, a negative one is refused,
// one beyond MaxTimeout is MaxTimeout.
func Build(job backend.Job, executionID string, defaultTimeout time.Duration) (Plan, error) {
	ex := job.Execution
	spec := executors.Spec{
		JobID:       job.ID,
		ExecutionID: executionID,
		Env:         map[string]string(ex.Environment),
		InputData:   ex.InputData,
		Timeout:     ex.Timeout.Duration(),
		Resources:   resources(ex.Resources),
	}
	switch {
	case spec.Timeout < 0:
		return Plan{}, invalid(fmt.Sprintf("timeout %s is negative (want a positive timeout, or none for the default of %s)",
			spec.Timeout, defaultTimeout))
	case spec.Timeout == 0:
		spec.Timeout = defaultTimeout
	case spec.Timeout > MaxTimeout:
		spec.Timeout = MaxTimeout
	}
	plan := Plan{Spec: spec}

	switch {
	case ex.HTTP != nil:
		req, err := httpRequest(ex.HTTP)
		if err != nil {
			return Plan{}, err
		}
		plan.Kind, plan.Spec.HTTP = KindHTTP, req
		plan.Executions = []Execution{{ID: executionID}}
		return plan, nil
	case ex.Script != nil && strings.EqualFold(ex.Script.Type, backend.ScriptHTTP):
		return Plan{}, invalid("HTTP_REQUEST job carries no execution.http request")
	case ex.Script == nil:
		return Plan{}, invalid("job has neither a script nor an HTTP request (tool-action jobs are not run by the orchestrator)")
	case strings.TrimSpace(ex.Script.Content) == "":
		return Plan{}, invalid("the script is empty: nothing to run")
	}

	lang, err := executors.ParseLanguage(ex.Script.Type)
	if err != nil {
		return Plan{}, err
	}
	plan.Spec.Script = &executors.Script{Language: lang, Content: ex.Script.Content, WorkDir: ex.Script.WorkingDirectory}

	switch ex.Target.Type {
	case "", backend.TargetLocal:
		plan.Kind = KindContainer
		plan.Executions = []Execution{{ID: executionID}}
		return plan, nil
	case backend.TargetServer:
		return planSSH(plan, job)
	}
	return Plan{}, invalid(fmt.Sprintf("unknown target type %q (want local or server)", ex.Target.Type))
}

func planSSH(plan Plan, job backend.Job) (Plan, error) {
	plan.Kind = KindSSH
	var details []backend.ServerDetails
	switch {
	case job.Metadata.MultiServer && len(job.Metadata.Servers) > 0:
		details = job.Metadata.Servers
	case job.Execution.Target.ServerDetails != nil:
		details = []backend.ServerDetails{*job.Execution.Target.ServerDetails}
	case job.Execution.Target.ServerID != "":
		return Plan{}, fmt.Errorf("%w for server %s", ErrNeedsCredentials, job.Execution.Target.ServerID)
	default:
		return Plan{}, invalid("server job names no server (target.serverDetails and target.serverId are empty)")
	}
	for i, d := range details {
		srv, err := server(d)
		if err != nil {
			return Plan{}, err
		}
		plan.Spec.Servers = append(plan.Spec.Servers, srv)
		id := plan.Spec.ExecutionID
		if len(details) > 1 {
			id = executors.ServerExecutionID(id, i)
		}
		plan.Executions = append(plan.Executions, Execution{ID: id, ServerID: srv.ID, ServerName: srv.Label()})
	}
	return plan, nil
}

func server(d backend.ServerDetails) (executors.Server, error) {
	name := d.Name
	if name == "" {
		name = d.Host
	}
	switch {
	case d.Host == "":
		return executors.Server{}, invalid(fmt.Sprintf("server %q has no host", name))
	case d.Username == "":
		return executors.Server{}, invalid(fmt.Sprintf("server %q has no username", name))
	case d.PrivateKey == "" && d.Password == "":
		return executors.Server{}, invalid(fmt.Sprintf("server %q has neither a private key nor a password", name))
	case d.Port < 0 || d.Port > 65535:
		return executors.Server{}, invalid(fmt.Sprintf("server %q has port %d", name, d.Port))
	}
	return executors.Server{
		ID:         d.ID.String(),
		Name:       d.Name,
		Host:       d.Host,
		Port:       d.Port,
		Username:   d.Username,
		PrivateKey: secret.Value(d.PrivateKey),
		Passphrase: secret.Value(d.Passphrase),
		Password:   secret.Value(d.Password),
	}, nil
}

func httpRequest(h *backend.HTTPRequest) (*executors.HTTPRequest, error) {
	u, err := url.Parse(h.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, invalid(fmt.Sprintf("HTTP request URL %q is not an http(s) URL", h.URL))
	}
	method := strings.ToUpper(strings.TrimSpace(h.Method))
	if method == "" {
		method = "GET"
	}
	return &executors.HTTPRequest{Method: method, URL: h.URL, Headers: map[string]string(h.Headers), Body: h.Body}, nil
}

func resources(r *backend.Resources) executors.Resources {
	if r == nil {
		return executors.Resources{}
	}
	return executors.Resources{CPUs: r.CPULimit, MemoryBytes: r.MemoryLimit, DiskBytes: r.DiskLimit, Pids: r.PidsLimit}
}

func invalid(reason string) error {
	return fmt.Errorf("%w: %s", executors.ErrInvalidSpec, reason)
}
