package job

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/cronium/orchestrator/backend"
	"github.com/cronium/orchestrator/helpers"
	"github.com/cronium/orchestrator/jobspec"
)

// ensureHelpers gives the current execution of a script job its runtime
// helpers: restored with the credential its script already holds, or new.
// A new credential is journaled before the script can use it, so that a
// restarted process still accepts it.
func (a *Actor) ensureHelpers() {
	r := a.run
	if r.plan == nil || r.plan.Spec.Script == nil {
		return
	}
	if r.helpers != nil && r.helpers.Saved().ExecutionID == r.execID {
		return
	}
	jobID, j := r.job.ID, a.deps.Journal
	keep := func(s helpers.Saved) error {
		data, err := json.Marshal(s)
		if err != nil {
			return err
		}
		return j.SaveHelpers(jobID, data)
	}
	b := a.deps.Helpers
	if b == nil {
		b = noHelperBackend{}
	}
	svc, err := helpers.New(helpers.Config{Backend: b, Observer: a.deps.HelperObserver, Logger: a.log,
		ExecutionID: r.execID, UserID: r.job.Metadata.UserID, Event: eventOf(r.job, r.plan), Keep: keep},
		r.helpersKept)
	if err != nil {
		a.log.Error("runtime helpers unavailable for this execution", "err", err)
		return
	}
	if s := svc.Saved(); s.Token != r.helpersKept.Token {
		if err := keep(s); err != nil {
			a.log.Error("could not journal the helpers' credential; after a restart the script's calls would be refused",
				"err", err)
		}
	}
	r.mu.Lock()
	r.helpers = svc
	r.mu.Unlock()
}

// eventOf is the event as the job's metadata tells it, for event() when the
// backend's context route cannot answer.
func eventOf(j backend.Job, p *jobspec.Plan) json.RawMessage {
	ev := map[string]any{"id": j.Metadata.EventID.String(), "name": j.Metadata.EventName, "type": j.Type,
		"runLocation": "LOCAL"}
	if len(p.Spec.Servers) > 0 {
		ev["runLocation"] = "REMOTE"
		if len(p.Spec.Servers) == 1 {
			ev["server"] = p.Spec.Servers[0].Name
		}
	}
	out, _ := json.Marshal(ev)
	return out
}

// report is what the runtime helpers tell /complete.
func (a *Actor) report() (json.RawMessage, *bool) {
	r := a.run
	r.mu.Lock()
	svc, plan := r.helpers, r.plan
	r.mu.Unlock()
	if svc == nil {
		return nil, nil
	}
	var servers []string
	for _, s := range plan.Spec.Servers {
		servers = append(servers, s.Name)
	}
	out, cond := svc.Report(servers)
	out, _ = r.out.Masker().JSON(out) // the script's output leaves with its output
	return out, cond
}

// noHelperBackend answers for a backend that serves no variables.
type noHelperBackend struct{}

var errNoVariables = errors.New("this orchestrator's backend serves no variables")

func (noHelperBackend) GetVariable(context.Context, string, string) (string, bool, error) {
	return "", false, errNoVariables
}
func (noHelperBackend) SetVariable(context.Context, string, string, string) error {
	return errNoVariables
}
func (noHelperBackend) ExecutionContext(context.Context, string) (json.RawMessage, error) {
	return nil, errNoVariables
}
