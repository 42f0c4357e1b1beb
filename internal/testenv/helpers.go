package testenv

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
)

// Variables keeps user variables in memory, per user, as the backend's
// variables route does (the route itself is tested in embedded and end to
// end in daemon): the runtime helpers' backend for tests below the daemon.
// Down makes every call fail; Context answers the execution context route
// (nil: 404).
type Variables struct {
	mu      sync.Mutex
	vars    map[string]string
	Down    bool
	Context json.RawMessage
}

var errDown = errors.New("503 Service Unavailable")

// Set sets a variable, as a job of user would.
func (v *Variables) Set(user, key, value string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.vars == nil {
		v.vars = map[string]string{}
	}
	v.vars[user+"/"+key] = value
}

// Get reads a variable; "" when unset.
func (v *Variables) Get(user, key string) string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.vars[user+"/"+key]
}

func (v *Variables) GetVariable(_ context.Context, user, key string) (string, bool, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.Down {
		return "", false, errDown
	}
	value, ok := v.vars[user+"/"+key]
	return value, ok, nil
}

func (v *Variables) SetVariable(_ context.Context, user, key, value string) error {
	v.mu.Lock()
	down := v.Down
	v.mu.Unlock()
	if down {
		return errDown
	}
	v.Set(user, key, value)
	return nil
}

func (v *Variables) ExecutionContext(context.Context, string) (json.RawMessage, error) {
	if v.Context == nil {
		return nil, errors.New("404 Not Found")
	}
	return v.Context, nil
}

// The examples of Cronium's runtime helpers page, verbatim: with input
// {"n": 21} and RUNS unset, each counts a run in RUNS and sets an output
// and a condition.
const (
	PythonExample = `data = cronium.input()
runs = int(cronium.getVariable("RUNS") or "0") + 1
cronium.setVariable("RUNS", str(runs))
cronium.setCondition(data.get("n", 0) > 10)
cronium.output({"doubled": data.get("n", 0) * 2, "runs": runs, "event": cronium.event().get("name")})
`
	NodeExample = "const n = parseInt(cronium.getVariable('RUNS') || '0') + 1;\n" +
		"cronium.setVariable('RUNS', String(n));\n" +
		"cronium.setCondition(n % 2 === 0);\n" +
		"cronium.output({ runs: n, input: cronium.input() });\n" +
		"console.log(`run ${n}, condition ${cronium.getCondition()}`);\n"
	BashExample = `runs=$(cronium_getVariable RUNS); runs=$(( ${runs:-0} + 1 ))
cronium_setVariable RUNS "$runs"
cronium_setCondition true
cronium_output "{\"runs\": $runs}"
echo "input was $(cronium_input)"
`
)
