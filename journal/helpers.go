package journal

import (
	"encoding/hex"
	"fmt"
	"path/filepath"
)

// helpersSuffix names a job's helpers in the earlier layout (see migrate).
const helpersSuffix = ".helpers"

func (d *Dir) helpersFile(jobID string) string {
	return filepath.Join(d.path, hex.EncodeToString([]byte(jobID))+helpersSuffix)
}

// SaveHelpers replaces what the job's runtime helpers keep (the
// execution's credential, what its script set). It returns once that is
// durable: the script hears back only then.
func (d *Dir) SaveHelpers(jobID string, data []byte) error {
	if err := d.log.append(record{op: opHelpers, jobID: jobID, payload: data}); err != nil {
		return fmt.Errorf("journal: save helpers of %s: %w", jobID, err)
	}
	return nil
}

// LoadHelpers returns what the job's runtime helpers kept, if anything.
func (d *Dir) LoadHelpers(jobID string) ([]byte, bool) {
	data, ok, err := d.log.read(helpersOf, jobID)
	return data, ok && err == nil
}
