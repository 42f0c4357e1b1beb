package backend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// PollJobs claims up to batchSize due jobs for this orchestrator. The
// claim is committed before the backend answers: after an ambiguous error
// (IsAmbiguous) jobs may be claimed under our id; OrphanedJobs finds them.
//
// Jobs that do not decode are claimed all the same; they are reported by a
// *BadJobsError returned together with the jobs that did decode. Poll is
// the same call, able to ask the backend to hold it.
func (c *Client) PollJobs(ctx context.Context, batchSize int) ([]Job, error) {
	p, err := c.Poll(ctx, batchSize, 0)
	return p.Jobs, err
}

// BadJobsError names claimed jobs that PollJobs could not decode. They are
// ours until failed or released.
type BadJobsError struct {
	IDs     []string // ids that could be read; empty ones omitted
	Reasons []string // why each of IDs could not be decoded
	// Unidentified counts the jobs whose id could not be read: they cannot
	// be named to the backend, so only the orphan check can release them.
	Unidentified int
	Err          error // the first decoding error
}

func (e *BadJobsError) Error() string {
	var which string
	switch {
	case e.Unidentified == 0:
		which = fmt.Sprintf("claimed job(s) %q", e.IDs)
	case len(e.IDs) == 0:
		which = fmt.Sprintf("%d claimed job(s) without a readable id", e.Unidentified)
	default:
		which = fmt.Sprintf("claimed job(s) %q and %d without a readable id", e.IDs, e.Unidentified)
	}
	return fmt.Sprintf("backend: poll: %s could not be decoded: %v", which, e.Err)
}

func (e *BadJobsError) Unwrap() error { return e.Err }

func decodeJobs(raws []json.RawMessage) ([]Job, error) {
	jobs := make([]Job, 0, len(raws))
	var bad *BadJobsError
	for _, raw := range raws {
		var j Job
		err := json.Unmarshal(raw, &j)
		if err == nil && j.ID != "" {
			jobs = append(jobs, j)
			continue
		}
		if err == nil {
			err = errors.New("job without id")
		}
		if bad == nil {
			bad = &BadJobsError{Err: err}
		}
		var id struct {
			ID FlexString `json:"id"`
		}
		if json.Unmarshal(raw, &id) == nil && id.ID != "" {
			bad.IDs = append(bad.IDs, string(id.ID))
			bad.Reasons = append(bad.Reasons, err.Error())
		} else {
			bad.Unidentified++
		}
	}
	if bad != nil {
		return jobs, bad
	}
	return jobs, nil
}

// Acknowledge returns the job's row; it changes nothing on the backend and
// is the only way to learn a job's current status (e.g. cancelled).
// ErrNotOwner: another orchestrator holds the job.
func (c *Client) Acknowledge(ctx context.Context, jobID string) (JobRow, error) {
	return c.acknowledge(ctx, jobID, c.call)
}

// acknowledge sends the acknowledge with send: c.call (with retries), or
// c.attempt for a single try inside another call's retry.
func (c *Client) acknowledge(ctx context.Context, jobID string, send func(context.Context, *request, any) error) (JobRow, error) {
	r, err := c.ackRequest(jobID)
	if err != nil {
		return JobRow{}, err
	}
	var resp struct {
		Job JobRow `json:"job"`
	}
	err = send(ctx, r, &resp)
	return resp.Job, err
}

func (c *Client) ackRequest(jobID string) (*request, error) {
	if err := needID("job", jobID); err != nil {
		return nil, err
	}
	return c.newRequest(http.MethodPost, RouteAcknowledge, jobID, nil, struct {
		OrchestratorID string    `json:"orchestratorId"`
		Timestamp      time.Time `json:"timestamp"`
	}{c.orchID, time.Now().UTC()})
}

// UpdateJobStatus reports running (send it once: each call resets the
// job's startedAt), completed or failed. The last two are terminal updates
// and, like CompleteJob, never land twice.
func (c *Client) UpdateJobStatus(ctx context.Context, jobID, status string, details StatusDetails) error {
	if err := needID("job", jobID); err != nil {
		return err
	}
	details.Message = SanitizeText(details.Message)
	details.Error = SanitizeText(details.Error)
	r, err := c.newRequest(http.MethodPut, RouteStatus, jobID, nil, struct {
		Status         string        `json:"status"`
		OrchestratorID string        `json:"orchestratorId"`
		Timestamp      time.Time     `json:"timestamp"`
		Details        StatusDetails `json:"details"`
	}{status, c.orchID, time.Now().UTC(), details})
	if err != nil {
		return err
	}
	if status == StatusCompleted || status == StatusFailed {
		return c.callOnce(ctx, r, jobID, landedIn(StatusCompleted, StatusFailed))
	}
	return c.call(ctx, r, nil)
}

// CompleteJob sends the job's final result: the one terminal update of a
// run. It never causes two terminal updates (see callOnce), also across
// calls: when a CompleteJob, FailJob, terminal UpdateJobStatus or
// ReleaseJob for the job returned an error after an ambiguous failure (it
// may have landed), the Client remembers the job, and the next of these
// calls for it first asks acknowledge whether the earlier one landed; if
// so it sends nothing and returns nil. A success forgets the job. A zero
// Timestamp is set to now.
func (c *Client) CompleteJob(ctx context.Context, jobID string, comp Completion) error {
	if err := needID("job", jobID); err != nil {
		return err
	}
	comp.Output.Stdout = SanitizeText(comp.Output.Stdout)
	comp.Output.Stderr = SanitizeText(comp.Output.Stderr)
	comp.Metrics = sanitizeJSON(comp.Metrics)
	comp.ScriptOutput = sanitizeJSON(comp.ScriptOutput)
	if comp.Timestamp.IsZero() {
		comp.Timestamp = time.Now().UTC()
	}
	r, err := c.newRequest(http.MethodPost, RouteComplete, jobID, nil, &comp, &comp.Output.Stdout, &comp.Output.Stderr)
	if err != nil {
		return err
	}
	landed := landedIn(StatusCompleted, StatusFailed)
	if comp.Status == StatusCancelled {
		// A UI cancel leaves the same status: the job is over either way.
		landed = landedIn(StatusCompleted, StatusFailed, StatusCancelled)
	}
	return c.callOnce(ctx, r, jobID, landed)
}

// FailJob ends the job as failed with errText, which must not be empty
// (the backend refuses that with a 400, and the job would stay open). Like
// CompleteJob it never causes two terminal updates, also across calls.
func (c *Client) FailJob(ctx context.Context, jobID, errText string, exitCode int) error {
	if err := needID("job", jobID); err != nil {
		return err
	}
	if errText == "" {
		return fmt.Errorf("backend: fail %s: empty error text: %w", jobID, ErrBadRequest)
	}
	r, err := c.newRequest(http.MethodPost, RouteFail, jobID, nil, struct {
		Error          string    `json:"error"`
		ExitCode       int       `json:"exitCode"`
		OrchestratorID string    `json:"orchestratorId"`
		Timestamp      time.Time `json:"timestamp"`
	}{SanitizeText(errText), exitCode, c.orchID, time.Now().UTC()})
	if err != nil {
		return err
	}
	return c.callOnce(ctx, r, jobID, landedIn(StatusCompleted, StatusFailed))
}

// ReleaseJob puts a job that never started back in the queue. Like the
// terminal calls it is not repeated once it may have landed, also across
// calls (see CompleteJob): a second release could take the job from an
// orchestrator that claimed it since.
func (c *Client) ReleaseJob(ctx context.Context, jobID, message string) error {
	if err := needID("job", jobID); err != nil {
		return err
	}
	r, err := c.newRequest(http.MethodPost, RouteRelease, jobID, nil, struct {
		Message string `json:"message"`
	}{SanitizeText(message)})
	if err != nil {
		return err
	}
	return c.callOnce(ctx, r, jobID, released)
}

// OrphanedJobs lists the jobs the backend believes this orchestrator holds
// (claimed or running, at most 100).
func (c *Client) OrphanedJobs(ctx context.Context) ([]JobRow, error) {
	r, err := c.newRequest(http.MethodGet, RouteOrphaned, "", url.Values{"orchestratorId": {c.orchID}}, nil)
	if err != nil {
		return nil, err
	}
	var rows []JobRow
	err = c.call(ctx, r, &rows)
	return rows, err
}

// CreateExecution creates the execution row execID (chosen by the caller,
// at most 100 characters). The backend answers a duplicate id with a 500,
// so a 500 after an attempt whose answer was lost (a *TransportError with
// Sent set: reset, or timed out waiting) means that attempt created it.
// A 500 after a 500 is an error.
func (c *Client) CreateExecution(ctx context.Context, execID string, body ExecutionCreate) error {
	if err := needID("execution", execID); err != nil {
		return err
	}
	body.ServerName = SanitizeText(body.ServerName)
	r, err := c.newRequest(http.MethodPost, RouteExecutionCreate, execID, nil, body)
	if err != nil {
		return err
	}
	mayExist := false
	return c.retry(ctx, r.route, func(ctx context.Context) error {
		err := c.attempt(ctx, r, nil)
		var api *APIError
		if mayExist && errors.As(err, &api) && api.Status == http.StatusInternalServerError {
			return nil
		}
		// Only a lost answer (reset or timeout after the request was
		// sent) leaves the row possibly created. A 500 is no such hint:
		// the backend answers every failure so, and two plain 500s must
		// not add up to a success.
		var te *TransportError
		if errors.As(err, &te) && te.Sent {
			mayExist = true
		}
		return err
	})
}

// ErrTerminalUpdate is returned, without any request, by UpdateExecution
// for an update the backend would treat as terminal.
var ErrTerminalUpdate = errors.New("backend: terminal execution update refused: end the job with CompleteJob")

// UpdateExecution sends a non-terminal execution update (output snapshot,
// timings); it is safe to repeat. Terminal updates are refused: they would
// re-run the job's actions, and the job ends through CompleteJob.
func (c *Client) UpdateExecution(ctx context.Context, execID string, u ExecutionUpdate) error {
	if err := needID("execution", execID); err != nil {
		return err
	}
	if u.IsTerminal() {
		return fmt.Errorf("update execution %s: %w", execID, ErrTerminalUpdate)
	}
	u.Output = sanitizeStringPtr(u.Output)
	u.Error = sanitizeStringPtr(u.Error)
	u.Metadata = sanitizeAny(u.Metadata)
	r, err := c.newRequest(http.MethodPut, RouteExecutionUpdate, execID, nil, &u, u.Output, u.Error)
	if err != nil {
		return err
	}
	return c.call(ctx, r, nil)
}

// Health asks the backend whether it is healthy: one attempt, no retries,
// since a probe should report the present.
func (c *Client) Health(ctx context.Context) error {
	r, err := c.newRequest(http.MethodGet, RouteHealth, "", nil, nil)
	if err != nil {
		return err
	}
	return c.attempt(ctx, r, nil)
}

// Heartbeat reports liveness: one attempt, no retries (the next beat is
// the retry). Empty OrchestratorID and zero Timestamp are filled in.
func (c *Client) Heartbeat(ctx context.Context, hb Heartbeat) error {
	if hb.OrchestratorID == "" {
		hb.OrchestratorID = c.orchID
	}
	if hb.Timestamp.IsZero() {
		hb.Timestamp = time.Now().UTC()
	}
	r, err := c.newRequest(http.MethodPost, RouteHeartbeat, "", nil, hb)
	if err != nil {
		return err
	}
	return c.attempt(ctx, r, nil)
}

// ServerCredentials fetches an SSH server's details, credentials included.
func (c *Client) ServerCredentials(ctx context.Context, serverID string) (ServerDetails, error) {
	if err := needID("server", serverID); err != nil {
		return ServerDetails{}, err
	}
	r, err := c.newRequest(http.MethodGet, RouteServerCredentials, serverID, nil, nil)
	if err != nil {
		return ServerDetails{}, err
	}
	var resp serverResponse
	if err := c.call(ctx, r, &resp); err != nil {
		return ServerDetails{}, err
	}
	return resp.details(), nil
}

// serverResponse takes the server bare or wrapped in {"server":..}, with
// its host as "host" or "address" (the backend's column name).
type serverResponse struct {
	serverWire
	Server *serverWire `json:"server"`
}

type serverWire struct {
	ServerDetails
	Address string `json:"address"`
}

func (r serverResponse) details() ServerDetails {
	w := r.serverWire
	if r.Server != nil {
		w = *r.Server
	}
	if w.Host == "" {
		w.Host = w.Address
	}
	return w.ServerDetails
}

func needID(kind, id string) error {
	if id == "" {
		return fmt.Errorf("backend: empty %s id: %w", kind, ErrBadRequest)
	}
	return nil
}
