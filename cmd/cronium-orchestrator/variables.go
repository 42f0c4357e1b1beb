package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"unicode"

	"github.com/cronium/orchestrator/embedded"
	"github.com/cronium/orchestrator/secret"
)

const variablesUsage = `Usage:
  cronium-orchestrator variables get  [--server URL] [--user ID] KEY
  cronium-orchestrator variables set  [--server URL] [--user ID] KEY VALUE|-
  cronium-orchestrator variables list [--server URL] [--user ID]

A user's variables on the embedded backend: what cronium.getVariable and
cronium.setVariable read and write in that user's jobs. set - reads the
value from standard input (one trailing newline dropped), which keeps a
secret out of the process list.
`

func cmdVariables(args []string) error { return runVariables(args, os.Stdin, os.Stdout) }

func runVariables(args []string, stdin io.Reader, out io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(os.Stderr, variablesUsage)
		if len(args) == 0 {
			return usageError(errors.New("want get, set or list"))
		}
		return nil
	}
	sub := args[0]
	fs := flag.NewFlagSet("variables "+sub, flag.ContinueOnError)
	server := fs.String("server", envOr("CRONIUM_SERVER", "http://127.0.0.1:8089"), "embedded backend URL (CRONIUM_SERVER)")
	user := fs.String("user", embedded.DefaultUserID, "the user whose variables these are (submit --user; the same default)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), variablesUsage)
		fs.PrintDefaults()
	}
	rest, err := parseInterspersed(fs, args[1:])
	if err != nil {
		return usageError(err)
	}
	want := map[string]int{"get": 1, "set": 2, "list": 0}
	n, ok := want[sub]
	switch {
	case !ok:
		return usageError(fmt.Errorf("unknown subcommand %q: want get, set or list", sub))
	case len(rest) != n:
		return usageError(fmt.Errorf("%s: want %d argument(s), got %d", sub, n, len(rest)))
	}
	client := embedded.NewPublicClient(*server, secret.Value(os.Getenv("CRONIUM_API_TOKEN")))
	ctx, stop := signalContext()
	defer stop()
	switch sub {
	case "get":
		v, err := client.Variable(ctx, *user, rest[0])
		if errors.Is(err, embedded.ErrVariableNotFound) {
			return fmt.Errorf("%s is not set for user %s", rest[0], *user)
		}
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(out, v.Value)
		return err
	case "set":
		value := rest[1]
		if value == "-" {
			b, err := io.ReadAll(stdin)
			if err != nil {
				return fmt.Errorf("read the value: %w", err)
			}
			value = strings.TrimSuffix(string(b), "\n")
		}
		_, err := client.SetVariable(ctx, *user, rest[0], value)
		return err
	}
	vars, err := client.Variables(ctx, *user)
	if err != nil {
		return err
	}
	for _, v := range vars {
		if _, err := fmt.Fprintf(out, "%s=%s\n", v.Key, listed(v.Value)); err != nil {
			return err
		}
	}
	return nil
}

// listed keeps one variable per line: a value with a newline or another
// control character is shown Go-quoted.
func listed(value string) string {
	if strings.IndexFunc(value, unicode.IsControl) >= 0 {
		return strconv.Quote(value)
	}
	return value
}
