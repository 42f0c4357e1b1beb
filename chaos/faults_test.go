package chaos_test

import (
	"context"
	"math/rand/v2"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/cronium/orchestrator/internal/testenv"
)

// fault is one kind of thing the driver does to the system.
type fault string

const (
	crashActor   fault = "crash an actor (admin API)"
	killActor    fault = "kill an actor (admin API)"
	dockerKill   fault = "docker kill a job container"
	sshKill      fault = "kill the SSH connections"
	sshFreeze    fault = "freeze the SSH connections (SIGSTOP)"
	orchKill9    fault = "kill -9 and restart the orchestrator"
	backendFail  fault = "backend fails a share of calls"
	backendStall fault = "backend stalls a share of calls"
	backendSlow  fault = "backend slows a share of calls"
)

// weighted faults: the driver draws from this list.
var faultMix = []struct {
	f      fault
	weight int
}{
	{crashActor, 4}, {killActor, 4}, {dockerKill, 2}, {sshKill, 1}, {sshFreeze, 1},
	{orchKill9, 1}, {backendFail, 2}, {backendStall, 1}, {backendSlow, 1},
}

// driver injects faults at random until its context ends.
type driver struct {
	rng     *rand.Rand
	orch    *orchestrator
	backend *faultyBackend
	ssh     *testenv.SSHD  // nil: no SSH jobs
	label   string         // the job containers' orchestrator label filter
	skip    map[fault]bool // kinds left out of this run

	mu        sync.Mutex
	done      map[fault]int   // faults carried out
	attempted map[fault]int   // drawn but found nothing to hit
	killed    map[string]bool // jobs whose container was killed: not expected to complete
}

// shortRunSkips are left out of the short run in `make test`, with the SSH
// jobs: with them `make chaos` still finds rare leftovers on the server
// (see the README), and a CI run must not fail on a known finding by chance.
var shortRunSkips = map[fault]bool{sshKill: true, sshFreeze: true}

func (d *driver) draw() fault {
	total := 0
	for _, m := range faultMix {
		if !d.skip[m.f] {
			total += m.weight
		}
	}
	n := d.rng.IntN(total)
	for _, m := range faultMix {
		if d.skip[m.f] {
			continue
		}
		if n < m.weight {
			return m.f
		}
		n -= m.weight
	}
	return faultMix[0].f
}

func (d *driver) run(ctx context.Context) {
	for {
		pause := time.Duration(200+d.rng.IntN(1300)) * time.Millisecond
		select {
		case <-ctx.Done():
			d.backend.set(healthy, 0)
			return
		case <-time.After(pause):
		}
		f := d.draw()
		ok := d.inject(f)
		d.mu.Lock()
		if ok {
			d.done[f]++
		} else {
			d.attempted[f]++
		}
		d.mu.Unlock()
	}
}

// inject carries out f; false when there was nothing to hit.
func (d *driver) inject(f fault) bool {
	switch f {
	case crashActor, killActor:
		pids := d.orch.jobActors()
		if len(pids) == 0 {
			return false
		}
		action := "crash"
		if f == killActor {
			action = "kill"
		}
		return d.orch.actorAction(action, pids[d.rng.IntN(len(pids))])
	case dockerKill:
		out, err := exec.Command("docker", "ps", "--filter", "label="+d.label,
			"--format", `{{.ID}} {{.Label "cronium.job-id"}}`).Output()
		lines := strings.Fields(strings.TrimSpace(string(out)))
		if err != nil || len(lines) < 2 {
			return false
		}
		i := d.rng.IntN(len(lines)/2) * 2
		if exec.Command("docker", "kill", lines[i]).Run() != nil {
			return false
		}
		d.mu.Lock()
		d.killed[lines[i+1]] = true
		d.mu.Unlock()
		return true
	case sshKill:
		return d.ssh != nil && d.ssh.KillConnections() == nil
	case sshFreeze:
		if d.ssh == nil || d.ssh.StopConnections() != nil {
			return false
		}
		time.Sleep(time.Duration(1+d.rng.IntN(5)) * time.Second) // past the keepalive's detection, or not
		return d.ssh.ContinueConnections() == nil
	case orchKill9:
		d.orch.kill9()
		return true
	case backendFail, backendStall, backendSlow:
		mode := map[fault]backendFault{backendFail: failing, backendStall: stalling, backendSlow: slow}[f]
		d.backend.set(mode, 0.2+0.4*d.rng.Float64())
		time.Sleep(time.Duration(1+d.rng.IntN(4)) * time.Second)
		d.backend.set(healthy, 0)
		return true
	}
	return false
}

func (d *driver) counts() (done, attempted map[fault]int, killed map[string]bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	done, attempted, killed = map[fault]int{}, map[fault]int{}, map[string]bool{}
	for k, v := range d.done {
		done[k] = v
	}
	for k, v := range d.attempted {
		attempted[k] = v
	}
	for k, v := range d.killed {
		killed[k] = v
	}
	return done, attempted, killed
}
