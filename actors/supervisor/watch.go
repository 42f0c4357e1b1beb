package supervisor

import (
	"fmt"

	"github.com/anthdm/hollywood/actor"

	"github.com/cronium/orchestrator/actors/kit"
	"github.com/cronium/orchestrator/messages"
)

// onRestarted: hollywood restarted a crashed child in place (same PID,
// fresh receiver over the same durable state). The budget decides whether
// it may go on.
func (s *Supervisor) onRestarted(ev actor.ActorRestartedEvent) {
	ch := s.st.children[ev.PID.ID]
	if ch == nil {
		if s.st.self != nil && ev.PID.ID == s.st.self.ID {
			s.log.Error("supervisor crashed and was restarted", "reason", kit.PanicReason(ev.Reason))
		}
		return
	}
	reason := kit.PanicReason(ev.Reason)
	ch.restarts++
	s.obs.ActorRestarted(ch.kind)
	s.st.noteRestart(messages.RestartEvent{At: s.deps.Clock.Now(), PID: ch.pid.ID, Kind: ch.kind, JobID: ch.jobID,
		Reason: reason})
	s.log.Warn("actor crashed and was restarted", "kind", ch.kind, "job_id", ch.jobID,
		"reason", reason, "restarts", ch.restarts)
	if !ch.budget.spend(s.deps.Clock.Now()) {
		s.budgetSpent(ch, reason)
	}
}

// onStopped: a child stopped. If the supervisor did not ask for it (the
// admin API killed it), it is supervised like a crash: respawned over the
// same durable state, within the same budget.
func (s *Supervisor) onStopped(c *actor.Context, ev actor.ActorStoppedEvent) {
	ch := s.st.children[ev.PID.ID]
	if ch == nil {
		return
	}
	s.obs.ActorStopped(ch.kind)
	if ch.stopping {
		delete(s.st.children, ev.PID.ID)
		if ch.failOnStop != "" {
			s.failStoppedJob(ch)
		}
		s.checkDrained()
		return
	}
	ch.restarts++
	s.obs.ActorRestarted(ch.kind)
	s.st.noteRestart(messages.RestartEvent{At: s.deps.Clock.Now(), PID: ch.pid.ID, Kind: ch.kind, JobID: ch.jobID,
		Reason: "stopped from outside; respawned"})
	within := ch.budget.spend(s.deps.Clock.Now())
	s.log.Warn("actor was stopped from outside; respawning", "kind", ch.kind, "job_id", ch.jobID, "restarts", ch.restarts)
	switch ch.kind {
	case KindJob:
		run := s.st.runs[ch.jobID]
		if run == nil {
			delete(s.st.children, ev.PID.ID)
			return
		}
		s.spawnJob(c, run)
	case KindLog:
		run := s.st.runs[ch.jobID]
		if run == nil || !within {
			delete(s.st.children, ev.PID.ID)
			return
		}
		s.spawnLog(c, run)
	case KindPoller:
		if s.st.drain != nil || !within {
			delete(s.st.children, ev.PID.ID)
			if s.st.drain == nil {
				s.respawnPollerLater()
			}
			return
		}
		s.spawnPoller(c)
	}
	if !within {
		s.budgetSpent(ch, "stopped from outside")
	}
}

// budgetSpent: restarts are not healing the child.
func (s *Supervisor) budgetSpent(ch *child, reason string) {
	s.obs.RestartBudgetExhausted(ch.kind)
	set := s.deps.Settings
	switch ch.kind {
	case KindJob:
		s.giveUpJob(ch, fmt.Sprintf("gave up after %d restarts within %s (restart budget %d); last failure: %s",
			ch.budget.used(), set.RestartWindow, set.MaxRestarts, reason))
	case KindLog:
		s.log.Error("log actor keeps crashing; no more output snapshots for this job (its final result is still sent)",
			"job_id", ch.jobID, "reason", reason)
		s.stopChild(ch)
	case KindPoller:
		s.log.Error("poller keeps crashing; pausing it", "reason", reason, "pause", set.Poll.MaxBackoff)
		s.stopChild(ch)
		s.respawnPollerLater()
	}
}

// giveUpJob asks the JobActor to stop the job and report it failed. If it
// keeps crashing even then, the supervisor ends the job itself.
func (s *Supervisor) giveUpJob(ch *child, why string) {
	run := s.st.runs[ch.jobID]
	if run == nil {
		return
	}
	if !ch.gaveUp {
		ch.gaveUp = true
		kit.Send(s.engine, ch.pid, messages.GiveUpJob{Reason: why})
		return
	}
	if ch.budget.used() <= 2*s.deps.Settings.MaxRestarts {
		return // give the give-up a chance to finish
	}
	if ch.failOnStop != "" {
		return // stopping already
	}
	s.log.Error("job actor crashes even while giving up; ending the job from the supervisor", "job_id", ch.jobID)
	// The Run is the actor's until it is gone: the job is failed once the
	// stop is confirmed (onStopped), never while the actor may still write.
	ch.failOnStop = why
	s.stopChild(ch)
}

// failStoppedJob ends the job of a job actor the supervisor stopped for
// good; the Run has no other writer left.
func (s *Supervisor) failStoppedJob(ch *child) {
	run := s.st.runs[ch.jobID]
	if run == nil {
		return
	}
	if c, ok := run.FailNow(ch.failOnStop, s.deps.Clock.Now()); ok {
		s.complete(run, c)
	}
	s.onJobFinished(messages.JobFinished{JobID: ch.jobID, Executor: "unknown", Outcome: "error"})
}

// onInterrupted: a job's execution was cut by something a restart can heal.
// It is supervised like a crash of the job's actor, without one: the
// restart budget decides whether the job resumes or is given up on.
func (s *Supervisor) onInterrupted(m messages.JobInterrupted) {
	ch := s.st.children[s.childID(KindJob, m.JobID)]
	if ch == nil || ch.stopping {
		return
	}
	reason := "execution interrupted: " + m.Reason
	ch.restarts++
	s.obs.ActorRestarted(ch.kind)
	s.st.noteRestart(messages.RestartEvent{At: s.deps.Clock.Now(), PID: ch.pid.ID, Kind: ch.kind, JobID: ch.jobID,
		Reason: reason})
	s.log.Warn("job execution interrupted", "job_id", ch.jobID, "reason", m.Reason, "restarts", ch.restarts)
	if !ch.budget.spend(s.deps.Clock.Now()) {
		s.budgetSpent(ch, reason)
		return
	}
	kit.Send(s.engine, ch.pid, messages.ResumeJob{})
}

func (s *Supervisor) respawnPollerLater() {
	engine, self := s.engine, s.st.self
	s.deps.Clock.AfterFunc(s.deps.Settings.Poll.MaxBackoff, func() { kit.Send(engine, self, respawnPoller{}) })
}
