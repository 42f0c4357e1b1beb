package supervisor

import (
	"sort"

	"github.com/cronium/orchestrator/messages"
)

// restartLogSize bounds the restarts kept for the status page.
const restartLogSize = 50

// noteRestart keeps the latest restarts, oldest first.
func (st *state) noteRestart(ev messages.RestartEvent) {
	if len(st.restartLog) >= restartLogSize {
		st.restartLog = append(st.restartLog[:0], st.restartLog[len(st.restartLog)-restartLogSize+1:]...)
	}
	st.restartLog = append(st.restartLog, ev)
}

// jobList reads every running job's status and output tail: up to lines
// lines, and never more than Settings.RecentLines, all a job keeps.
// Run.Status and Log.Recent only take their own short locks, so this
// never blocks the supervisor on a job's work.
func (s *Supervisor) jobList(lines int) messages.JobList {
	lines = max(lines, 0)
	var l messages.JobList
	for _, run := range s.st.runs {
		info := messages.JobInfo{JobStatus: run.Status(), Output: []messages.OutputLine{}}
		for _, line := range run.Output().Recent(lines) {
			info.Output = append(info.Output, messages.OutputLine{Stream: line.Stream.String(), Text: line.Text})
		}
		l.Jobs = append(l.Jobs, info)
	}
	sort.Slice(l.Jobs, func(i, j int) bool { return l.Jobs[i].ClaimedAt.Before(l.Jobs[j].ClaimedAt) })
	return l
}
