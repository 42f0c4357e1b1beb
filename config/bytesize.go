package config

import (
	"fmt"
	"strings"

	"github.com/docker/go-units"
)

// ByteSize is a size in bytes, written as 1048576, 64k, 64MiB or 1g (binary
// units, as Docker's --memory reads them).
type ByteSize int64

const (
	KiB ByteSize = 1 << 10
	MiB ByteSize = 1 << 20
	GiB ByteSize = 1 << 30
)

// ParseByteSize reads a size with an optional binary unit suffix.
func ParseByteSize(s string) (ByteSize, error) {
	n, err := units.RAMInBytes(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("want a size such as 1048576, 64k or 512MiB, got %q", s)
	}
	return ByteSize(n), nil
}

func (b ByteSize) String() string { return units.BytesSize(float64(b)) }

// Bytes is the size as an int64.
func (b ByteSize) Bytes() int64 { return int64(b) }
