package config

import (
	"fmt"
	"strings"
)

// MarkdownTable documents every key for the README: key, environment
// variable, flag, default and meaning. A test keeps the README in step.
func MarkdownTable() string {
	def := Default()
	var b strings.Builder
	b.WriteString("| key | environment | flag | default | meaning |\n|---|---|---|---|---|\n")
	for _, k := range Keys() {
		env := "`" + k.Env + "`"
		for _, a := range k.Aliases {
			env += ", `" + a + "`"
		}
		d := k.Get(&def)
		switch {
		case k.Path == "orchestrator.state_dir":
			d = "/var/lib/cronium-orchestrator (root), else ~/.local/state/cronium-orchestrator"
		case k.Path == "ssh.known_hosts":
			d = "~/.ssh/known_hosts"
		case d == "":
			d = "(empty)"
		}
		fmt.Fprintf(&b, "| `%s` | %s | `--%s` | `%s` | %s |\n", k.Path, env, k.Flag, d, k.Doc)
	}
	return b.String()
}
