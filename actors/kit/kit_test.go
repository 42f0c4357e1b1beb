package kit

import (
	"strings"
	"testing"
)

func TestSafelyTurnsPanicsIntoErrors(t *testing.T) {
	err := Safely("executor", func() error { panic("nil map write") })
	if err == nil || !strings.Contains(err.Error(), "executor panicked: nil map write") {
		t.Fatalf("got %v", err)
	}
	if err := Safely("x", func() error { return nil }); err != nil {
		t.Fatal(err)
	}
}

func TestTypeName(t *testing.T) {
	type local struct{}
	for _, tt := range []struct {
		msg  any
		want string
	}{{local{}, "local"}, {&local{}, "local"}, {nil, "nil"}, {3, "int"}} {
		if got := TypeName(tt.msg); got != tt.want {
			t.Errorf("TypeName(%T) = %q, want %q", tt.msg, got, tt.want)
		}
	}
}
