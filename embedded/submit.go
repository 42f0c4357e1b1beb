package embedded

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/cronium/orchestrator/backend"
	"github.com/cronium/orchestrator/secret"
)

// SubmitRequest is the body of POST /api/jobs.
type SubmitRequest struct {
	Name         string               `json:"name,omitempty"`   // metadata.eventName
	UserID       string               `json:"userId,omitempty"` // metadata.userId, whose variables the job uses; "": DefaultUserID
	Script       *backend.Script      `json:"script,omitempty"`
	HTTP         *backend.HTTPRequest `json:"http,omitempty"`
	Environment  map[string]string    `json:"environment,omitempty"`
	Timeout      string               `json:"timeout,omitempty"` // Go duration; "" = 1h
	InputData    json.RawMessage      `json:"inputData,omitempty"`
	Resources    *backend.Resources   `json:"resources,omitempty"`
	RetryPolicy  *backend.RetryPolicy `json:"retryPolicy,omitempty"`
	Priority     int                  `json:"priority,omitempty"`
	ScheduledFor *time.Time           `json:"scheduledFor,omitempty"`
	Servers      []ServerSpec         `json:"servers,omitempty"`
}

// ServerSpec is an SSH server to run on. Its credentials are secret.Values
// and are never revealed by its own encodings (JSON, fmt, slog show
// [REDACTED]): a SubmitRequest can be logged or printed safely. They are
// revealed only where they must travel: in the body PublicClient.Submit
// sends (submitWire); the server decodes them as plain JSON strings.
type ServerSpec struct {
	Name       string       `json:"name"`
	Host       string       `json:"host"`
	Port       int          `json:"port,omitempty"` // 0: 22
	Username   string       `json:"username"`
	PrivateKey secret.Value `json:"privateKey,omitempty"` // PEM/OpenSSH text
	Passphrase secret.Value `json:"passphrase,omitempty"`
	Password   secret.Value `json:"password,omitempty"`
}

// submitWire is a SubmitRequest as it goes over the wire: its Servers
// (shadowing the embedded field in JSON) carry the credentials in clear.
type submitWire struct {
	SubmitRequest
	Servers []serverWire `json:"servers,omitempty"`
}

type serverWire struct {
	Name       string `json:"name"`
	Host       string `json:"host"`
	Port       int    `json:"port,omitempty"`
	Username   string `json:"username"`
	PrivateKey string `json:"privateKey,omitempty"`
	Passphrase string `json:"passphrase,omitempty"`
	Password   string `json:"password,omitempty"`
}

// wire reveals the credentials, for the request body only.
func (r SubmitRequest) wire() submitWire {
	w := submitWire{SubmitRequest: r}
	for _, s := range r.Servers {
		w.Servers = append(w.Servers, serverWire{s.Name, s.Host, s.Port, s.Username,
			s.PrivateKey.Reveal(), s.Passphrase.Reveal(), s.Password.Reveal()})
	}
	return w
}

// DefaultTimeout is a job's timeout when the submission names none.
const DefaultTimeout = time.Hour

// validate returns every problem at once.
func (r SubmitRequest) validate() (time.Duration, error) {
	var problems []error
	switch {
	case r.Script == nil && r.HTTP == nil:
		problems = append(problems, errors.New("script or http is required"))
	case r.Script != nil && r.HTTP != nil:
		problems = append(problems, errors.New("script and http are exclusive"))
	case r.Script != nil:
		switch r.Script.Type {
		case backend.ScriptBash, backend.ScriptPython, backend.ScriptNode:
		default:
			problems = append(problems, fmt.Errorf("script.type %q: want BASH, PYTHON or NODEJS", r.Script.Type))
		}
	case r.HTTP.URL == "":
		problems = append(problems, errors.New("http.url is required"))
	}
	if r.HTTP != nil && len(r.Servers) > 0 {
		problems = append(problems, errors.New("http jobs run locally: servers not allowed"))
	}
	timeout := DefaultTimeout
	if r.Timeout != "" {
		d, err := time.ParseDuration(r.Timeout)
		if err != nil || d <= 0 {
			problems = append(problems, fmt.Errorf("timeout %q: want a positive Go duration like 30s", r.Timeout))
		}
		timeout = d
	}
	for i, s := range r.Servers {
		if s.Host == "" || s.Username == "" {
			problems = append(problems, fmt.Errorf("servers[%d]: host and username are required", i))
		}
		if !s.PrivateKey.IsSet() && !s.Password.IsSet() {
			problems = append(problems, fmt.Errorf("servers[%d]: privateKey or password is required", i))
		}
	}
	return timeout, errors.Join(problems...)
}

// The execution and metadata as the queue serves them (the page's Job).
type wireExecution struct {
	Target      wireTarget           `json:"target"`
	Script      *wireScript          `json:"script,omitempty"`
	HTTP        *backend.HTTPRequest `json:"http,omitempty"`
	Environment map[string]string    `json:"environment"`
	Timeout     int64                `json:"timeout"` // nanoseconds
	InputData   json.RawMessage      `json:"inputData"`
	Variables   json.RawMessage      `json:"variables"`
	Resources   *backend.Resources   `json:"resources,omitempty"`
	RetryPolicy *backend.RetryPolicy `json:"retryPolicy,omitempty"`
}

type wireTarget struct {
	Type          string                 `json:"type"`
	ServerID      string                 `json:"serverId,omitempty"`
	ServerDetails *backend.ServerDetails `json:"serverDetails,omitempty"`
}

type wireScript struct {
	Type             string `json:"type"`
	Content          string `json:"content"`
	WorkingDirectory string `json:"workingDirectory"`
}

type wireMetadata struct {
	EventName    string                  `json:"eventName"`
	TriggeredBy  string                  `json:"triggeredBy"`
	LogID        int64                   `json:"logId"`
	OriginalType string                  `json:"originalType"`
	EventID      any                     `json:"eventId"` // a number for container jobs, a string for SSH ones
	UserID       string                  `json:"userId"`
	MultiServer  bool                    `json:"multiServer,omitempty"`
	Servers      []backend.ServerDetails `json:"servers,omitempty"`
}

// Submit stores a new queued job and returns its id. An invalid request
// is refused whole, with every problem named.
func (s *Store) Submit(ctx context.Context, r SubmitRequest) (string, error) {
	return s.submit(ctx, r, time.Now())
}

func (s *Store) submit(ctx context.Context, r SubmitRequest, now time.Time) (string, error) {
	timeout, err := r.validate()
	if err != nil {
		return "", &invalidError{err}
	}
	id := "job_" + randomAlnum(12)
	err = s.inTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		// eventId and logId are numbers the real backend takes from its
		// events and logs tables; the job's sequence number serves here.
		var seq int64
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(rowid), 0) + 1 FROM jobs`).Scan(&seq); err != nil {
			return fmt.Errorf("next job number: %w", err)
		}
		servers, err := storeServers(ctx, tx, r.Servers)
		if err != nil {
			return err
		}
		jobType, exec, meta := buildJob(r, timeout, seq, servers)
		payload, err := json.Marshal(exec)
		if err != nil {
			return err
		}
		metadata, err := json.Marshal(meta)
		if err != nil {
			return err
		}
		scheduled := now
		if r.ScheduledFor != nil {
			scheduled = *r.ScheduledFor
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO jobs (id, type, status, priority, payload, metadata,
			scheduled_for, created_at, updated_at) VALUES (?, ?, 'queued', ?, ?, ?, ?, ?, ?)`,
			id, jobType, r.Priority, string(payload), string(metadata), scheduled.UnixMilli(),
			now.UnixMilli(), now.UnixMilli()); err != nil {
			return fmt.Errorf("insert job: %w", err)
		}
		return addEvent(ctx, tx, id, now, EventSubmitted, "", false, jobType)
	})
	if err != nil {
		return "", fmt.Errorf("embedded: submit: %w", err)
	}
	return id, nil
}

func storeServers(ctx context.Context, tx *sql.Tx, specs []ServerSpec) ([]backend.ServerDetails, error) {
	var out []backend.ServerDetails
	for _, sp := range specs {
		port := sp.Port
		if port == 0 {
			port = 22
		}
		name := sp.Name
		if name == "" {
			name = sp.Host
		}
		rec := serverRecord{Name: name, Host: sp.Host, Port: port, Username: sp.Username,
			PrivateKey: sp.PrivateKey.Reveal(), Passphrase: sp.Passphrase.Reveal(), Password: sp.Password.Reveal()}
		n, err := insertServer(ctx, tx, rec)
		if err != nil {
			return nil, err
		}
		rec.ID = n
		out = append(out, rec.details())
	}
	return out, nil
}

// details is the server as serverDetails / metadata.servers carry it:
// privateKey text or, without one, password.
func (sv serverRecord) details() backend.ServerDetails {
	d := backend.ServerDetails{ID: backend.FlexString(strconv.FormatInt(sv.ID, 10)), Name: sv.Name,
		Host: sv.Host, Port: sv.Port, Username: sv.Username, PrivateKey: sv.PrivateKey, Passphrase: sv.Passphrase}
	if sv.PrivateKey == "" {
		d.Password = sv.Password
	}
	return d
}

func buildJob(r SubmitRequest, timeout time.Duration, seq int64, servers []backend.ServerDetails) (string, wireExecution, wireMetadata) {
	exec := wireExecution{
		Target:      wireTarget{Type: backend.TargetLocal},
		HTTP:        r.HTTP,
		Environment: r.Environment,
		Timeout:     int64(timeout),
		InputData:   r.InputData,
		Variables:   json.RawMessage("{}"),
		Resources:   r.Resources,
		RetryPolicy: r.RetryPolicy,
	}
	if exec.Environment == nil {
		exec.Environment = map[string]string{}
	}
	if len(exec.InputData) == 0 {
		exec.InputData = json.RawMessage("{}")
	}
	meta := wireMetadata{EventName: r.Name, TriggeredBy: "manual", LogID: seq, OriginalType: "SCRIPT",
		EventID: seq, UserID: r.UserID}
	if meta.UserID == "" {
		meta.UserID = DefaultUserID
	}
	if meta.EventName == "" {
		meta.EventName = "job " + strconv.FormatInt(seq, 10)
	}
	if r.Script != nil {
		exec.Script = &wireScript{Type: r.Script.Type, Content: r.Script.Content, WorkingDirectory: r.Script.WorkingDirectory}
	} else {
		meta.OriginalType = backend.ScriptHTTP
	}
	jobType := "container"
	if len(servers) > 0 {
		jobType = "ssh"
		first := servers[0]
		exec.Target = wireTarget{Type: backend.TargetServer, ServerID: string(first.ID), ServerDetails: &first}
		meta.EventID = strconv.FormatInt(seq, 10)
	}
	if len(servers) > 1 {
		meta.MultiServer = true
		meta.Servers = servers
	}
	return jobType, exec, meta
}

const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

func randomAlnum(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand, Go ≥ 1.24)
	for i := range b {
		b[i] = alnum[int(b[i])%len(alnum)]
	}
	return string(b)
}

// invalidError is a submission the public API refuses with a 400.
type invalidError struct{ err error }

func (e *invalidError) Error() string { return "invalid job: " + e.err.Error() }
func (e *invalidError) Unwrap() error { return e.err }
