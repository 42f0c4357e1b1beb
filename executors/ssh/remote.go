package ssh

import (
	"bytes"
	"crypto/rand"
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
//
// The step first prints sync, a line of its own: a login shell that prints
// something when it starts would otherwise garble the first frame (see
// frameReader).
func remoteCommand(vars [][2]string, step string) (cmd, sync string) {
	var b strings.Builder
	for _, kv := range vars {
		b.WriteString(kv[0] + "=" + shellQuote(kv[1]) + "\n")
	}
	b.WriteString(remoteLib)
	b.WriteString("\n\"${1:-" + step + "}\"\n")
	enc := base64.StdEncoding.EncodeToString([]byte(b.String()))
	sync = "cronium-sync-" + randomHex(12)
	return `/bin/sh -c 'echo ` + sync + ` && p="$(echo ` + enc + ` | base64 -d)" && eval "$p"'`, sync
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

// shellQuote quotes s for POSIX sh: inside single quotes only the quote
// itself needs care.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

var unsafeTag = regexp.MustCompile(`[^A-Za-z0-9_-]`)

// spoolTag names an execution's spool directory on the server,
// cronium-<job>.<execution>.XXXXXX, so that spools can be found by job
// (jobSpools) as well as by execution.
func spoolTag(jobID, executionID string) string {
	return tagPart(jobID, 40) + "." + tagPart(executionID, 64)
}

// jobSpools matches the spool tags of every execution of jobID.
func jobSpools(jobID string) string { return tagPart(jobID, 40) + ".*" }

// tagPart is id when it is plain and at most size bytes long, else a
// readable prefix plus a hash, size bytes at most: never a glob or shell
// character, nor the dot that separates the parts of a tag.
func tagPart(id string, size int) string {
	clean := unsafeTag.ReplaceAllString(id, "_")
	if clean == id && len(clean) <= size && clean != "" {
		return clean
	}
	sum := sha256.Sum256([]byte(id))
	return clean[:min(len(clean), size-13)] + "-" + hex.EncodeToString(sum[:6])
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// checkEnv checks that every variable can be written to the environment
// file: a shell name, and a value without NUL (which no shell string holds).
func checkEnv(vars []executors.EnvVar) error {
	for _, v := range vars {
		if !envName.MatchString(v.Name) {
			return fmt.Errorf("%w: environment variable name %q is not a valid shell name", executors.ErrInvalidSpec, v.Name)
		}
		if strings.IndexByte(v.Value, 0) >= 0 {
			return fmt.Errorf("%w: environment variable %s contains a NUL byte", executors.ErrInvalidSpec, v.Name)
		}
	}
	return nil
}

// envFile is the job's environment as sh export lines, sourced by the job
// shell; vars passed checkEnv. sshd's SendEnv/AcceptEnv would need every
// name allowed on the server, so we do not rely on Setenv.
func envFile(vars []executors.EnvVar) []byte {
	var b bytes.Buffer
	for _, v := range vars {
		b.WriteString("export " + v.Name + "=" + shellQuote(v.Value) + "\n")
	}
	return b.Bytes()
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
