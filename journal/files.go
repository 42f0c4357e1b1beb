package journal

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// jobFile is a file of one job in the directory: kept output, or an entry
// or helpers of the earlier layout, a file per job.
type jobFile struct {
	name, jobID, suffix string
}

func jobFiles(dir string) ([]jobFile, error) {
	list, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []jobFile
	for _, f := range list {
		if f.IsDir() {
			continue
		}
		for _, suf := range []string{suffix, helpersSuffix, outputSuffix} {
			stem, ok := strings.CutSuffix(f.Name(), suf)
			if !ok {
				continue
			}
			if raw, err := hex.DecodeString(stem); err == nil && len(raw) > 0 {
				out = append(out, jobFile{name: f.Name(), jobID: string(raw), suffix: suf})
			}
		}
	}
	return out, nil
}

// migrate moves entries and helpers of the earlier layout into the log, so
// that an upgrade from it resumes their jobs: their contents as they are
// (an unreadable one is reported by Load as before), durable before the
// files go.
func (d *Dir) migrate() error {
	files, err := jobFiles(d.path)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	var recs []record
	var moved []string
	for _, f := range files {
		o := opEntry
		switch f.suffix {
		case helpersSuffix:
			o = opHelpers
		case outputSuffix:
			continue
		}
		data, err := os.ReadFile(filepath.Join(d.path, f.name))
		if err != nil {
			return fmt.Errorf("journal: migrate %s: %w", f.name, err)
		}
		recs = append(recs, record{op: o, jobID: f.jobID, payload: data})
		moved = append(moved, f.name)
	}
	if len(recs) == 0 {
		return nil
	}
	if err := d.log.append(recs...); err != nil {
		return fmt.Errorf("journal: migrate: %w", err)
	}
	for _, name := range moved {
		if err := os.Remove(filepath.Join(d.path, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("journal: migrate: %w", err)
		}
	}
	return syncDir(d.path)
}

// sweep removes kept output of jobs without an entry: a crash between a
// job's removal and its output file's left it.
func (d *Dir) sweep() {
	files, _ := jobFiles(d.path)
	for _, f := range files {
		if f.suffix != outputSuffix {
			continue
		}
		d.log.mu.Lock()
		_, ok := d.log.entries[f.jobID]
		d.log.mu.Unlock()
		if !ok {
			_ = os.Remove(filepath.Join(d.path, f.name))
		}
	}
}

// Pending lists the jobs a journal directory still holds anything of
// (an entry, helpers, kept output), in job id order, without changing it:
// a running process may be writing it.
func Pending(path string) ([]string, error) {
	ids := map[string]bool{}
	f, err := os.Open(filepath.Join(path, logName))
	var info os.FileInfo
	if err == nil {
		if info, err = f.Stat(); err != nil {
			f.Close()
		}
	}
	switch {
	case err == nil:
		live := map[string]int{}
		_, err = scan(f, info.Size(), func(r record, _, _ int64) {
			switch r.op {
			case opEntry:
				live[r.jobID] |= 1
			case opHelpers:
				live[r.jobID] |= 2
			case opRemove:
				delete(live, r.jobID)
			}
		})
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("journal: %w", err)
		}
		for id := range live {
			ids[id] = true
		}
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("journal: %w", err)
	}
	files, err := jobFiles(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("journal: %w", err)
	}
	for _, f := range files {
		ids[f.jobID] = true
	}
	out := make([]string, 0, len(ids))
	for id := range ids {
		out = append(out, id)
	}
	sort.Strings(out)
	return out, nil
}
