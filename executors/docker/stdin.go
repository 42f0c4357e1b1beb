package docker

import (
	"archive/tar"
	"fmt"
	"io"
	"time"
)

// bootstrap is the container's entrypoint script (POSIX sh: busybox, bash
// and dash all run it). The script arrives as a tar on stdin rather than in
// argv or env, which the kernel limits in size, or through the archive API,
// which refuses read-only root filesystems and runs before the tmpfs is
// mounted. $1 is the directory to start in, the rest the interpreter argv.
// The interpreter gets /dev/null as stdin, so a script reading stdin sees
// EOF instead of what is left of the tar.
const bootstrap = `set -e
mkdir -p ` + filesDir + `
if ! tar -x -f - -C ` + filesDir + `; then
	echo "cronium: could not unpack the job's script" >&2
	exit 125
fi
mkdir -p "$1"
cd "$1"
shift
exec "$@" </dev/null
`

// tarRecord is tar's default blocking: GNU tar reads whole records, so a
// stream padded to one needs no EOF to end, even if closing stdin fails.
const tarRecord = 20 * 512

// file is one file the bootstrap unpacks into filesDir.
type file struct {
	name string
	data []byte
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
			Mode:     0o644,
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
