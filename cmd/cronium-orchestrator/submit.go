package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cronium/orchestrator/backend"
	"github.com/cronium/orchestrator/embedded"
	"github.com/cronium/orchestrator/executors"
	"github.com/cronium/orchestrator/secret"
)

// repeated collects a flag given several times.
type repeated []string

func (r *repeated) String() string     { return strings.Join(*r, ",") }
func (r *repeated) Set(v string) error { *r = append(*r, v); return nil }

type submitFlags struct {
	server, lang, timeout, name, input, cwd string
	user                                    string
	follow                                  bool
	env, ssh                                repeated
	sshKey, sshPassphraseEnv, sshPassEnv    string
}

func cmdSubmit(args []string) error {
	var f submitFlags
	fs := flag.NewFlagSet("submit", flag.ContinueOnError)
	fs.StringVar(&f.server, "server", envOr("CRONIUM_SERVER", "http://127.0.0.1:8089"), "embedded backend URL (CRONIUM_SERVER)")
	fs.StringVar(&f.lang, "lang", "", "bash, python or node (default: from the file extension, else bash)")
	fs.StringVar(&f.timeout, "timeout", "", "job timeout, e.g. 30s (default 1h)")
	fs.StringVar(&f.name, "name", "", "job name shown in the backend")
	fs.StringVar(&f.user, "user", embedded.DefaultUserID,
		"the user the job runs for: whose variables cronium.getVariable/setVariable use (see the variables command)")
	fs.StringVar(&f.input, "input", "", "inputData as JSON")
	fs.StringVar(&f.cwd, "cwd", "", "working directory of the script")
	fs.BoolVar(&f.follow, "follow", false,
		"stream the output, then show the script's output and condition, and exit with the job's exit code (124 timeout, 125 could not run)")
	fs.Var(&f.env, "env", "environment variable K=V (repeatable)")
	fs.Var(&f.ssh, "ssh", "run over SSH on user@host[:port] (repeat for a multi-server job)")
	fs.StringVar(&f.sshKey, "ssh-key", "", "private key file for --ssh")
	fs.StringVar(&f.sshPassphraseEnv, "ssh-passphrase-env", "", "environment variable holding the key's passphrase")
	fs.StringVar(&f.sshPassEnv, "ssh-password-env", "", "environment variable holding the SSH password")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: cronium-orchestrator submit [flags] FILE|-")
		fs.PrintDefaults()
	}
	files, err := parseInterspersed(fs, args)
	if err != nil {
		return usageError(err)
	}
	if len(files) != 1 {
		return usageError(errors.New("want exactly one script FILE, or - for standard input"))
	}
	req, err := f.request(files[0])
	if err != nil {
		return usageError(err)
	}
	return submit(f, req)
}

func submit(f submitFlags, req embedded.SubmitRequest) error {
	client := embedded.NewPublicClient(f.server, secret.Value(os.Getenv("CRONIUM_API_TOKEN")))
	ctx, stop := signalContext()
	defer stop()
	id, err := client.Submit(ctx, req)
	if err != nil {
		return err
	}
	if !f.follow {
		fmt.Println(id)
		return nil
	}
	fmt.Fprintf(os.Stderr, "submitted %s\n", id)
	view, err := client.Follow(ctx, id, 200*time.Millisecond, os.Stdout, os.Stderr)
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintf(os.Stderr, "stopped following %s; the job keeps running\n", id)
			return &exitError{code: 130}
		}
		return err
	}
	code := embedded.ExitCodeFor(view)
	printScriptResult(os.Stderr, view.Result)
	if c := view.Result.Cost; c != nil {
		fmt.Fprintf(os.Stderr, "cost: %s\n", c)
	}
	fmt.Fprintf(os.Stderr, "job %s: %s (exit code %d)\n", id, view.Result.Status, code)
	if code != 0 {
		return &exitError{code: code}
	}
	return nil
}

func (f submitFlags) request(file string) (embedded.SubmitRequest, error) {
	var content []byte
	var err error
	if file == "-" {
		content, err = io.ReadAll(os.Stdin)
	} else {
		content, err = os.ReadFile(file)
	}
	if err != nil {
		return embedded.SubmitRequest{}, err
	}
	lang, err := languageOf(f.lang, file)
	if err != nil {
		return embedded.SubmitRequest{}, err
	}
	req := embedded.SubmitRequest{
		Name:        f.name,
		UserID:      f.user,
		Script:      &backend.Script{Type: lang, Content: string(content), WorkingDirectory: f.cwd},
		Timeout:     f.timeout,
		Environment: map[string]string{},
	}
	for _, kv := range f.env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return req, fmt.Errorf("--env %q: want K=V", kv)
		}
		req.Environment[k] = v
	}
	if f.input != "" {
		if !json.Valid([]byte(f.input)) {
			return req, errors.New("--input: not valid JSON")
		}
		req.InputData = json.RawMessage(f.input)
	}
	req.Servers, err = f.servers()
	return req, err
}

// printScriptResult shows what the script set with cronium.output and
// cronium.setCondition, on w (standard error: standard output is the
// job's own, byte for byte). A JSON null output counts as none.
func printScriptResult(w io.Writer, r embedded.ResultView) {
	if len(r.ScriptOutput) > 0 && string(r.ScriptOutput) != "null" {
		var b bytes.Buffer
		if json.Compact(&b, r.ScriptOutput) != nil {
			b.Reset()
			b.Write(r.ScriptOutput)
		}
		fmt.Fprintf(w, "script output: %s\n", b.Bytes())
	}
	if r.Condition != nil {
		fmt.Fprintf(w, "condition: %t\n", *r.Condition)
	}
}

// languageOf maps --lang or the file extension to the backend's type.
func languageOf(flagLang, file string) (string, error) {
	name := flagLang
	if name == "" {
		switch filepath.Ext(file) {
		case ".py":
			name = "python"
		case ".js", ".mjs", ".cjs":
			name = "node"
		default:
			name = "bash"
		}
	}
	lang, err := executors.ParseLanguage(name)
	if err != nil {
		return "", err
	}
	return map[executors.Language]string{executors.Bash: backend.ScriptBash,
		executors.Python: backend.ScriptPython, executors.Node: backend.ScriptNode}[lang], nil
}

func (f submitFlags) servers() ([]embedded.ServerSpec, error) {
	if len(f.ssh) == 0 {
		if f.sshKey != "" || f.sshPassEnv != "" {
			return nil, errors.New("--ssh-key and --ssh-password-env need --ssh user@host")
		}
		return nil, nil
	}
	var key, passphrase, password secret.Value
	if f.sshKey != "" {
		b, err := os.ReadFile(f.sshKey)
		if err != nil {
			return nil, fmt.Errorf("--ssh-key: %w", err)
		}
		key = secret.Value(b)
	}
	if f.sshPassphraseEnv != "" {
		passphrase = secret.Value(os.Getenv(f.sshPassphraseEnv))
	}
	if f.sshPassEnv != "" {
		v, ok := os.LookupEnv(f.sshPassEnv)
		if !ok {
			return nil, fmt.Errorf("--ssh-password-env: %s is not set", f.sshPassEnv)
		}
		password = secret.Value(v)
	}
	if !key.IsSet() && !password.IsSet() {
		return nil, errors.New("--ssh needs --ssh-key FILE or --ssh-password-env VAR")
	}
	var out []embedded.ServerSpec
	for _, target := range f.ssh {
		user, hostport, ok := strings.Cut(target, "@")
		if !ok || user == "" || hostport == "" {
			return nil, fmt.Errorf("--ssh %q: want user@host[:port]", target)
		}
		host, port := hostport, 0
		if h, p, ok := strings.Cut(hostport, ":"); ok && !strings.Contains(p, ":") {
			n, err := strconv.Atoi(p)
			if err != nil || n <= 0 || n > 65535 {
				return nil, fmt.Errorf("--ssh %q: bad port", target)
			}
			host, port = h, n
		}
		out = append(out, embedded.ServerSpec{Name: hostport, Host: host, Port: port, Username: user,
			PrivateKey: key, Passphrase: passphrase, Password: password})
	}
	return out, nil
}

// parseInterspersed accepts flags after positional arguments too
// (`submit job.sh --follow`), which the flag package alone does not.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return positional, nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
