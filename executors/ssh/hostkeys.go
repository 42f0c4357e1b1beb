package ssh

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// hostKeys verifies server host keys: per-server pinned fingerprints when
// the job names them, else the known_hosts file under the policy.
type hostKeys struct {
	path   string
	policy HostKeyPolicy
	log    *slog.Logger
	// mu serialises accept-new appends inside this process; flock covers
	// other processes sharing the file.
	mu sync.Mutex
}

// anyAddr stands in for the remote address: the known_hosts lookup goes by
// the host name we dialed, which we always pass.
var anyAddr = &net.TCPAddr{IP: net.IPv4zero, Port: 22}

// hostCheck verifies one connection attempt's host key. known_hosts is
// read once per attempt, for the algorithms to offer and the key check,
// and only when neither pins nor insecure-ignore decide.
type hostCheck struct {
	h    *hostKeys
	addr string // host:port as dialed
	pins []string
	// db is the parsed known_hosts; nil when the file does not exist.
	db    ssh.HostKeyCallback
	dbErr error
}

func (h *hostKeys) forDial(addr string, pins []string) *hostCheck {
	c := &hostCheck{h: h, addr: addr, pins: pins}
	if len(pins) == 0 && h.policy != PolicyInsecureIgnore {
		c.db, c.dbErr = h.load()
	}
	return c
}

// load parses known_hosts. A missing file lists no host.
func (h *hostKeys) load() (ssh.HostKeyCallback, error) {
	db, err := knownhosts.New(h.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("ssh: known_hosts %s: %w", h.path, err)
	}
	return db, nil
}

// callback verifies the key. accepted is called once the key passed,
// which lets the dialer tell authentication failures from host key
// failures.
func (c *hostCheck) callback(accepted func()) ssh.HostKeyCallback {
	return func(_ string, _ net.Addr, key ssh.PublicKey) error {
		if err := c.verify(key); err != nil {
			return err
		}
		accepted()
		return nil
	}
}

func (c *hostCheck) verify(key ssh.PublicKey) error {
	presented := ssh.FingerprintSHA256(key)
	if len(c.pins) > 0 {
		for _, p := range c.pins {
			if normalizeFingerprint(p) == presented {
				return nil
			}
		}
		return &HostKeyError{Addr: c.addr, Presented: presented, KeyType: key.Type(), Expected: c.pins,
			Source: "the pinned fingerprints", Changed: true}
	}
	if c.h.policy == PolicyInsecureIgnore {
		c.h.log.Warn("SSH HOST KEY NOT VERIFIED: host_key_policy is insecure-ignore; connections can be intercepted",
			"server", c.addr, "presented", presented)
		return nil
	}
	if c.dbErr != nil {
		return c.dbErr
	}
	err := c.h.check(c.db, c.addr, key)
	if errors.Is(err, ErrHostKeyUnknown) && c.h.policy == PolicyAcceptNew {
		return c.h.record(c.addr, key)
	}
	return err
}

// normalizeFingerprint accepts "SHA256:abc", "abc" and padded base64.
func normalizeFingerprint(fp string) string {
	fp = strings.TrimRight(strings.TrimPrefix(strings.TrimSpace(fp), "SHA256:"), "=")
	return "SHA256:" + fp
}

// check looks the key up in db, a parsed known_hosts (nil: no file).
func (h *hostKeys) check(db ssh.HostKeyCallback, addr string, key ssh.PublicKey) error {
	if db == nil {
		return h.keyError(addr, key, nil)
	}
	err := db(addr, anyAddr, key)
	var ke *knownhosts.KeyError
	var re *knownhosts.RevokedError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &re):
		return &HostKeyError{Addr: addr, Presented: ssh.FingerprintSHA256(key), KeyType: key.Type(),
			Expected: []string{"(this key is marked @revoked)"}, Source: h.path, Changed: true}
	case errors.As(err, &ke):
		return h.keyError(addr, key, ke.Want)
	}
	return fmt.Errorf("ssh: known_hosts %s: %w", h.path, err)
}

func (h *hostKeys) keyError(addr string, key ssh.PublicKey, want []knownhosts.KnownKey) error {
	e := &HostKeyError{Addr: addr, Presented: ssh.FingerprintSHA256(key), KeyType: key.Type(),
		Source: h.path, Changed: len(want) > 0}
	for _, w := range want {
		e.Expected = append(e.Expected, fmt.Sprintf("%s %s (line %d)", w.Key.Type(), ssh.FingerprintSHA256(w.Key), w.Line))
	}
	return e
}

// record appends a first-seen key under accept-new. It re-checks under the
// file lock, so two processes meeting a new server at once record it once,
// and a key recorded meanwhile by someone else is enforced, not overwritten.
func (h *hostKeys) record(addr string, key ssh.PublicKey) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := os.MkdirAll(filepath.Dir(h.path), 0o700); err != nil {
		return fmt.Errorf("ssh: accept-new: %w", err)
	}
	f, err := os.OpenFile(h.path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("ssh: accept-new: %w", err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("ssh: accept-new: lock %s: %w", h.path, err)
	}
	defer syscall.Flock(int(f.Fd()), syscall.LOCK_UN) //nolint:errcheck // closing unlocks too
	db, err := h.load()                               // again: another process may have recorded it meanwhile
	if err != nil {
		return err
	}
	if err := h.check(db, addr, key); !errors.Is(err, ErrHostKeyUnknown) {
		return err
	}
	line := knownhosts.Line([]string{addr}, key) + "\n"
	if needsNewline(f) {
		line = "\n" + line
	}
	if _, err := f.WriteString(line); err != nil {
		return fmt.Errorf("ssh: accept-new: write %s: %w", h.path, err)
	}
	h.log.Info("ssh: recorded the host key of a new server (accept-new)", "server", addr,
		"key_type", key.Type(), "fingerprint", ssh.FingerprintSHA256(key), "known_hosts", h.path)
	return nil
}

func needsNewline(f *os.File) bool {
	st, err := f.Stat()
	if err != nil || st.Size() == 0 {
		return false
	}
	b := make([]byte, 1)
	_, err = f.ReadAt(b, st.Size()-1)
	return err == nil && b[0] != '\n'
}

// algorithms restricts the host key algorithms offered to the server to the
// types known_hosts lists for it. Without this a server with several host
// keys may present one we do not know, which would read as "changed".
func (c *hostCheck) algorithms() []string {
	if c.db == nil {
		return nil
	}
	var ke *knownhosts.KeyError
	if err := c.db(c.addr, anyAddr, probeKey()); !errors.As(err, &ke) {
		return nil
	}
	var algos []string
	seen := map[string]bool{}
	for _, w := range ke.Want {
		for _, a := range algorithmsFor(w.Key.Type()) {
			if !seen[a] {
				seen[a] = true
				algos = append(algos, a)
			}
		}
	}
	return algos
}

func algorithmsFor(keyType string) []string {
	if keyType == ssh.KeyAlgoRSA {
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
	}
	return []string{keyType}
}

// probeKey is a key no server has: looking it up yields the known keys.
var probeKey = sync.OnceValue(func() ssh.PublicKey {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		panic(err)
	}
	return k
})
