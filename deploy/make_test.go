package deploy_test

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// `make help` lists every target the Makefile declares, each with a line
// that says what it does.
func TestMakeHelpListsEveryTarget(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make")
	}
	mk, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	phony := regexp.MustCompile(`(?m)^\.PHONY:(.*)$`).FindSubmatch(mk)
	if phony == nil {
		t.Fatal("no .PHONY line")
	}
	out, err := exec.Command("make", "-s", "-C", "..", "help").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, target := range strings.Fields(string(phony[1])) {
		re := regexp.MustCompile(`(?m)^  make ` + regexp.QuoteMeta(target) + `\s+\S.*$`)
		if !re.Match(out) {
			t.Errorf("make help does not describe %q:\n%s", target, out)
		}
	}
}
