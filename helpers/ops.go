package helpers

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"
)

// output keeps the script's output; the last call wins. asText: a value
// that is not JSON is taken as a string (Bash's cronium_output).
func (s *Service) output(server string, value []byte, asText bool) answer {
	if !json.Valid(value) {
		if !asText {
			return refuse(refusal("the output is not valid JSON"))
		}
		if !utf8.Valid(value) {
			return refuse(refusal("the output is not text"))
		}
		value, _ = json.Marshal(string(value))
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, value); err != nil {
		return refuse(refusal("the output is not valid JSON"))
	}
	if compact.Len() > maxOutput {
		return refuse(refusal("the output is %d bytes encoded; at most %d", compact.Len(), maxOutput))
	}
	return s.set(server, func(r *Result) { r.Output = compact.Bytes() })
}

func (s *Service) setCondition(server string, value []byte) answer {
	var c bool
	switch strings.ToLower(strings.TrimSpace(string(value))) {
	case "true", "1":
		c = true
	case "false", "0", "":
	default:
		return refuse(refusal("setCondition takes true or false"))
	}
	return s.set(server, func(r *Result) { r.Condition = &c })
}

// set changes what the server's run set, keeps it, then answers: once the
// script has its answer, a restart cannot lose what it set.
func (s *Service) set(server string, change func(*Result)) answer {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.saved.Results[server]
	change(&r)
	s.saved.Results[server] = r
	if s.cfg.Keep != nil {
		if err := s.cfg.Keep(s.saved); err != nil {
			s.cfg.Logger.Error("could not keep what the script set; a restart would lose it",
				"execution_id", s.cfg.ExecutionID, "err", err)
		}
	}
	return ok(nil)
}

// checkKey refuses keys the backend's route could not carry.
func checkKey(key string) error {
	switch {
	case key == "":
		return refusal("a variable needs a name")
	case len(key) > maxKey:
		return refusal("a variable's name is at most %d bytes", maxKey)
	case !utf8.ValidString(key) || strings.ContainsAny(key, "\x00\n\r"):
		return refusal("a variable's name must be one line of text")
	}
	return nil
}

func (s *Service) user() error {
	if s.cfg.UserID == "" {
		return refusal("variables belong to a user and this job has none (metadata.userId)")
	}
	return nil
}

func (s *Service) getVariable(ctx context.Context, key string) answer {
	if err := checkKey(key); err != nil {
		return refuse(err)
	}
	if err := s.user(); err != nil {
		return refuse(err)
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	v, found, err := s.cfg.Backend.GetVariable(ctx, s.cfg.UserID, key)
	switch {
	case err != nil:
		return refuse(fmt.Errorf("the backend did not answer: %w", err))
	case !found:
		return none()
	}
	return ok([]byte(v))
}

func (s *Service) setVariable(ctx context.Context, key string, value []byte) answer {
	if err := checkKey(key); err != nil {
		return refuse(err)
	}
	switch {
	case len(value) == 0:
		return refuse(refusal("a variable's value cannot be empty"))
	case len(value) > maxValue:
		return refuse(refusal("a variable's value is at most %d bytes", maxValue))
	case !utf8.Valid(value):
		return refuse(refusal("a variable's value must be text"))
	}
	if err := s.user(); err != nil {
		return refuse(err)
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	if err := s.cfg.Backend.SetVariable(ctx, s.cfg.UserID, key, string(value)); err != nil {
		return refuse(fmt.Errorf("the backend did not answer: %w", err))
	}
	return ok(nil)
}

// maxEvent keeps event()'s answer within the relay's FIFO buffer.
const maxEvent = 32 << 10

// event is the run's event from the backend's context route, or from the
// job's metadata when the route fails or knows none.
func (s *Service) event(ctx context.Context) answer {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	ev := s.cfg.Event
	if raw, err := s.cfg.Backend.ExecutionContext(ctx, s.cfg.ExecutionID); err == nil {
		var c struct {
			Event json.RawMessage `json:"event"`
		}
		if json.Unmarshal(raw, &c) == nil && len(c.Event) > 0 && string(c.Event) != "null" {
			ev = c.Event
		}
	} else {
		s.cfg.Logger.Debug("event context unavailable; answering from the job's metadata",
			"execution_id", s.cfg.ExecutionID, "err", err)
	}
	if len(ev) == 0 {
		ev = json.RawMessage("{}")
	}
	if len(ev) > maxEvent {
		ev = trimEvent(ev)
	}
	return ok(ev)
}

// trimEvent drops the event's content (the script itself, which the
// script has): what is left is small.
func trimEvent(ev json.RawMessage) json.RawMessage {
	var m map[string]json.RawMessage
	if json.Unmarshal(ev, &m) != nil {
		return json.RawMessage("{}")
	}
	delete(m, "content")
	out, _ := json.Marshal(m)
	if len(out) > maxEvent {
		return json.RawMessage("{}")
	}
	return out
}

// Report is what the job tells the backend: a container or single-server
// job's output and condition as set; for several servers, the output is an
// object keyed by server name (servers that set none are left out) and the
// condition is true only if every server set it true.
func (s *Service) Report(servers []string) (json.RawMessage, *bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(servers) <= 1 {
		var r Result
		for _, v := range s.saved.Results { // one run: whichever name it has
			r = v
		}
		return r.Output, r.Condition
	}
	outputs := map[string]json.RawMessage{}
	var cond *bool
	all := true
	names := append([]string(nil), servers...)
	sort.Strings(names)
	for _, name := range names {
		r := s.saved.Results[name]
		if r.Output != nil {
			outputs[name] = r.Output
		}
		if r.Condition != nil {
			cond = new(bool)
		}
		all = all && r.Condition != nil && *r.Condition
	}
	if cond != nil {
		*cond = all
	}
	if len(outputs) == 0 {
		return nil, cond
	}
	out, _ := json.Marshal(outputs)
	return out, cond
}
