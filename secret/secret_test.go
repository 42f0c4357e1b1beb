package secret

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestValueNeverPrintsItself(t *testing.T) {
	const plain = "hunter2-very-secret"
	v := Value(plain)
	type holder struct {
		Token Value
		Ptr   *Value
	}
	h := holder{Token: v, Ptr: &v}

	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, nil))
	logger.Info("msg", "token", v, "holder", h)
	js, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	renderings := map[string]string{
		"%v":   fmt.Sprintf("%v", v),
		"%s":   fmt.Sprintf("%s", v),
		"%q":   fmt.Sprintf("%q", v),
		"%+v":  fmt.Sprintf("%+v", h),
		"%#v":  fmt.Sprintf("%#v", h),
		"json": string(js),
		"slog": logs.String(),
	}
	for name, got := range renderings {
		if strings.Contains(got, plain) {
			t.Errorf("%s rendering leaks the secret: %s", name, got)
		}
		if !strings.Contains(got, redacted) {
			t.Errorf("%s rendering does not say it redacted: %s", name, got)
		}
	}
	if v.Reveal() != plain || !v.IsSet() || Value("").IsSet() {
		t.Fatal("Reveal/IsSet broken")
	}
}
