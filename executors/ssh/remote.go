package ssh

import (
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/cronium/orchestrator/executors"
)

// remoteLib is the POSIX sh library every remote step runs; see remote.sh
// for the spool layout and the frame protocol.
//
//go:embed remote.sh
var remoteLib string

// remoteCommand is the command line for one remote step: its variables,
// the library and the entry point, base64-encoded. sshd hands the command
// to the user's login shell, which may be bash, zsh, csh or fish; a single
// line of one single-quoted word without quotes or backslashes inside means
// the same in all of them, and no part of the program needs quoting twice.
// The decoded program stays in $p so that setup can save it as lib.sh.
// Nothing secret is in it: environment values travel over stdin.
func remoteCommand(vars [][2]string, step string) string {
	var b strings.Builder
	for _, kv := range vars {
		b.WriteString(kv[0] + "=" + shellQuote(kv[1]) + "\n")
	}
	b.WriteString(remoteLib)
	b.WriteString("\n\"${1:-" + step + "}\"\n")
	enc := base64.StdEncoding.EncodeToString([]byte(b.String()))
	return `/bin/sh -c 'p="$(echo ` + enc + ` | base64 -d)" && eval "$p"'`
}

// shellQuote quotes s for POSIX sh: inside single quotes only the quote
// itself needs care.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

var unsafeTag = regexp.MustCompile(`[^A-Za-z0-9_-]`)

// spoolTag names an execution's spool directory (cronium-<tag>.XXXXXX). It
// is the execution id when that is short and plain, else a readable prefix
// plus a hash, so that it never holds glob or shell characters.
func spoolTag(executionID string) string {
	clean := unsafeTag.ReplaceAllString(executionID, "_")
	if clean == executionID && len(clean) <= 64 && clean != "" {
		return clean
	}
	sum := sha256.Sum256([]byte(executionID))
	if len(clean) > 40 {
		clean = clean[:40]
	}
	return clean + "-" + hex.EncodeToString(sum[:6])
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// envFile is the job's environment as sh export lines, sourced by the job
// shell. sshd's SendEnv/AcceptEnv would need every name allowed on the
// server, so we do not rely on Setenv.
func envFile(vars []executors.EnvVar) ([]byte, error) {
	var b strings.Builder
	for _, v := range vars {
		if !envName.MatchString(v.Name) {
			return nil, fmt.Errorf("%w: environment variable name %q is not a valid shell name", executors.ErrInvalidSpec, v.Name)
		}
		if strings.ContainsRune(v.Value, 0) {
			return nil, fmt.Errorf("%w: environment variable %s contains a NUL byte", executors.ErrInvalidSpec, v.Name)
		}
		b.WriteString("export " + v.Name + "=" + shellQuote(v.Value) + "\n")
	}
	return []byte(b.String()), nil
}

// jobVars are the settings the detached wrapper, job and watchdog read
// from lib.sh.
func jobVars(lang executors.Language, workDir, scriptName string, timeout time.Duration) [][2]string {
	return [][2]string{
		{"timeout", seconds(timeout)},
		{"timeout_s", strconv.Itoa(int(math.Ceil(timeout.Seconds())))},
		{"lang", string(lang)},
		{"workdir", workDir},
		{"script", scriptName},
	}
}

// seconds formats a timeout for sleep(1); "0" means none.
func seconds(d time.Duration) string {
	if d <= 0 {
		return "0"
	}
	return strconv.FormatFloat(math.Max(d.Seconds(), 0.001), 'f', 3, 64)
}

// graceTicks is the stop grace in the library's tenths of a second.
func graceTicks(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds()*10)))
}
