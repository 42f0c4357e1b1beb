package docker

import (
	"archive/tar"
	"cmp"
	"fmt"
	"io"
	"math"
	"strconv"
	"time"
)

// bootstrap is the container's entrypoint script (POSIX sh: busybox, bash
// and dash all run it). The script arrives as a tar on stdin rather than in
// argv or env, which the kernel limits in size, or through the archive API,
// which refuses read-only root filesystems and runs before the tmpfs is
// mounted. $1 is the directory to start in, $2 the backstop in whole
// seconds (0: none), the rest the interpreter argv. The interpreter gets
// /dev/null as stdin, so a script reading stdin sees EOF instead of what is
// left of the tar.
//
// The backstop kills the script when nobody else did: the executor stops
// it at its timeout, but a container left running by an orchestrator that
// never comes back would otherwise run forever. It needs timeout(1)
// (coreutils or busybox); an image without it runs unguarded.
// The bootstrap's last words when the script did not arrive whole: the
// Run that started the container ended during the upload (a kill -9 of the
// orchestrator). Nothing of the job ran then; see scriptNeverArrived.
//
// Before it runs the script, the bootstrap marks its arrival: a Run that
// adopts a running container tells by it whether the script is running or
// the bootstrap is still reading a cut upload (see settleUpload).
const (
	unpackFailed     = "cronium: could not unpack the job's script"
	unpackFailedCode = "125"
	arrivedMarker    = filesDir + "/.arrived"
)

const bootstrap = `set -e
mkdir -p ` + filesDir + `
if ! tar -x -f - -C ` + filesDir + `; then
	echo "` + unpackFailed + `" >&2
	exit ` + unpackFailedCode + `
fi
: >` + arrivedMarker + `
mkdir -p "$1"
cd "$1"
limit=$2
shift 2
if [ "$limit" != 0 ] && command -v timeout >/dev/null 2>&1; then
	exec timeout -s KILL "$limit" "$@" </dev/null
fi
exec "$@" </dev/null
`

// backstopSlack keeps the container's own deadline behind the executor's
// (timeout, SIGTERM, grace, SIGKILL), so that an attached executor always
// stops the script first and reports why.
const backstopSlack = 5 * time.Second

// backstop is the bootstrap's $2 for a job with timeout and stop grace.
func backstop(timeout, grace time.Duration) string {
	if timeout <= 0 {
		return "0"
	}
	return strconv.FormatInt(int64(math.Ceil((timeout + grace + backstopSlack).Seconds())), 10)
}

// tarRecord is tar's default blocking: GNU tar reads whole records, so a
// stream padded to one needs no EOF to end, even if closing stdin fails.
const tarRecord = 20 * 512

// file is one file the bootstrap unpacks into filesDir.
type file struct {
	name string
	data []byte
	mode int64 // 0: 0644
}

// writeFiles writes files to w as a tar stream padded to a whole record.
func writeFiles(w io.Writer, files []file) error {
	cw := &countingWriter{w: w}
	tw := tar.NewWriter(cw)
	now := time.Now().Truncate(time.Second)
	for _, f := range files {
		hdr := &tar.Header{
			Typeflag: tar.TypeReg,
			Name:     f.name,
			Mode:     cmp.Or(f.mode, 0o644),
			Size:     int64(len(f.data)),
			ModTime:  now,
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("write tar header: %w", err)
		}
		if _, err := tw.Write(f.data); err != nil {
			return fmt.Errorf("write tar: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("write tar: %w", err)
	}
	if pad := (tarRecord - cw.n%tarRecord) % tarRecord; pad > 0 {
		if _, err := w.Write(make([]byte, pad)); err != nil {
			return fmt.Errorf("write tar: %w", err)
		}
	}
	return nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
