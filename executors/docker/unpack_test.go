package docker

import "testing"

func TestOnlyUnpackFailure(t *testing.T) {
	for _, tc := range []struct {
		name, stdout, stderr string
		want                 bool
	}{
		{"tar's complaint and the bootstrap's line", "", "tar: short read\n" + unpackFailed + "\n", true},
		{"the bootstrap's line alone", "", unpackFailed + "\n", true},
		{"without the final newline", "", "tar: short read\n" + unpackFailed, true},
		{"the script printed something", "hello\n", unpackFailed + "\n", false},
		{"other errors before it", "", "oops\n" + unpackFailed + "\n", false},
		{"the line is not last", "", unpackFailed + "\nmore\n", false},
		{"nothing at all", "", "", false},
		{"tar only", "", "tar: short read\n", false},
	} {
		if got := onlyUnpackFailure(tc.stdout, tc.stderr); got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}
