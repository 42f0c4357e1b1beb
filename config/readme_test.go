package config

import (
	"os"
	"strings"
	"testing"
)

const (
	tableBegin = "<!-- config-table:begin -->\n"
	tableEnd   = "<!-- config-table:end -->"
)

// The README's configuration table is generated from the Config struct;
// UPDATE_README=1 go test ./config rewrites it.
func TestREADMEConfigTableIsCurrent(t *testing.T) {
	path := "../README.md"
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	readme := string(raw)
	i, j := strings.Index(readme, tableBegin), strings.Index(readme, tableEnd)
	if i < 0 || j < i {
		t.Fatalf("README.md has no %q ... %q section", tableBegin, tableEnd)
	}
	want := MarkdownTable()
	if got := readme[i+len(tableBegin) : j]; got != want {
		if os.Getenv("UPDATE_README") != "" {
			readme = readme[:i+len(tableBegin)] + want + readme[j:]
			if err := os.WriteFile(path, []byte(readme), 0o644); err != nil {
				t.Fatal(err)
			}
			return
		}
		t.Fatal("README.md's configuration table is out of date; run UPDATE_README=1 go test ./config")
	}
}
