package ssh

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/cronium/orchestrator/executors"
)

// danglingBound bounds one server's part of RemoveDangling. Listing is
// quick; the sweep stops what is left of each lost wrapper's job, which
// takes the stop grace and a few seconds.
const danglingBound = 5 * time.Minute

// ownerVars mark a spool as this orchestrator's, for the execution id its
// job knows (setup writes them to the spool's owner file). Hex keeps each a
// single word of plain characters, whatever the ids hold. Both are always
// set, empty without an orchestrator id, so that nothing in the login
// environment can stand in for them.
func ownerVars(orchestratorID, executionID string) [][2]string {
	if orchestratorID == "" {
		return [][2]string{{"owner", ""}, {"owner_exec", ""}}
	}
	return [][2]string{{"owner", hex.EncodeToString([]byte(orchestratorID))},
		{"owner_exec", hex.EncodeToString([]byte(executionID))}}
}

// RemoveDangling removes, on every server the pool has an open connection
// to, the spools of this orchestrator's jobs that have ended and that no
// job owns: results nobody will read, left when the orchestrator died
// between a job's end and the spool's removal, or when the job was ended
// without its servers (an orphan, an unreadable journal entry). owners is
// called after each server's listing (see executors.Owners); an error from
// it removes nothing there. A spool whose wrapper died without recording a
// status counts as ended, and what is left of its job is stopped first.
// Running jobs' spools, other orchestrators' and spools without an owner
// file (an executor without an orchestrator id, or an older version) are
// never touched.
//
// Servers are reached only over connections already open, on a free slot:
// RemoveDangling never dials and never waits for a slot (a server whose
// slots are all busy is skipped until a later call), and its use does not
// keep an idle connection open. It returns how many spools it removed and
// every failure.
func (e *Executor) RemoveDangling(ctx context.Context, owners executors.Owners) (int, error) {
	if e.opts.OrchestratorID == "" {
		return 0, errors.New("ssh: remove dangling spools: no orchestrator id to tell ours apart")
	}
	removed := 0
	var errs []error
	for _, srv := range e.pool.live() {
		if ctx.Err() != nil {
			errs = append(errs, fmt.Errorf("ssh: remove dangling spools: %w", context.Cause(ctx)))
			break
		}
		n, err := e.removeDanglingOn(ctx, srv, owners)
		removed += n
		if err != nil {
			errs = append(errs, fmt.Errorf("server %s: %w", srv.Label(), err))
		}
	}
	return removed, errors.Join(errs...)
}

// removeDanglingOn is RemoveDangling on one server.
func (e *Executor) removeDanglingOn(ctx context.Context, srv executors.Server, owners executors.Owners) (int, error) {
	l := e.pool.tryAcquire(srv)
	if l == nil {
		e.opts.Logger.Debug("ssh: every slot busy; dangling spools are looked for next time", "server", srv.Label())
		return 0, nil
	}
	defer l.release()
	ctx, cancel := context.WithTimeout(ctx, danglingBound)
	defer cancel()
	vars := append(spoolVars(e.opts, "*"), ownerVars(e.opts.OrchestratorID, "")...)
	listed, err := runStep(ctx, l, srv, vars, "dangling", nil)
	if err != nil || len(listed) == 0 {
		return 0, err
	}
	owned, err := owners()
	if err != nil {
		return 0, fmt.Errorf("ssh: remove dangling spools: %w", err)
	}
	names := unowned(listed, owned)
	if len(names) == 0 {
		return 0, nil
	}
	swept, err := runStep(ctx, l, srv, vars, "sweep", strings.NewReader(strings.Join(names, "\n")+"\n"))
	n := 0
	for _, f := range swept {
		if f.kind == 'R' && len(f.args) == 1 && slices.Contains(names, f.args[0]) {
			n++
			e.opts.Logger.Info("ssh: removed a spool no job owns", "server", srv.Label(), "spool", f.args[0])
		}
	}
	return n, err
}

// spoolName is a spool directory's name as dangling lists it.
var spoolName = regexp.MustCompile(`^cronium-[A-Za-z0-9._-]+$`)

// unowned picks, from the spools dangling listed (C frames), those whose
// execution no job owns. A frame it cannot read names nothing.
func unowned(listed []frame, owned func(executionID string) bool) []string {
	var names []string
	for _, f := range listed {
		if f.kind != 'C' || len(f.args) != 2 || !spoolName.MatchString(f.args[0]) {
			continue
		}
		id, err := hex.DecodeString(f.args[1])
		if err != nil || owned(string(id)) {
			continue
		}
		names = append(names, f.args[0])
	}
	return names
}
