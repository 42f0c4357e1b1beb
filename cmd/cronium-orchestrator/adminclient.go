package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/cronium/orchestrator/admin"
	"github.com/cronium/orchestrator/config"
)

// defaultAdmin is admin.listen's default, as a URL.
var defaultAdmin = "http://" + config.Default().Admin.Listen

// adminClient calls the admin API of a running orchestrator.
type adminClient struct {
	base  string
	token string
	http  *http.Client
}

// adminFlags registers --admin and --token on fs.
func adminFlags(fs *flag.FlagSet) func() adminClient {
	base := fs.String("admin", defaultAdmin, "URL of the orchestrator's admin API (admin.listen)")
	token := fs.String("token", "", "admin token, when admin.listen is not loopback (default $CRONIUM_ADMIN_TOKEN)")
	return func() adminClient {
		t := *token
		if t == "" {
			t = os.Getenv("CRONIUM_ADMIN_TOKEN")
		}
		// Bounded: kill and crash wait up to a few seconds for the restart.
		return adminClient{base: strings.TrimRight(*base, "/"), token: t, http: &http.Client{Timeout: 15 * time.Second}}
	}
}

// call sends a request and decodes a 2xx answer into out; any other
// answer becomes an error with the API's own message.
func (c adminClient) call(method, path string, out any) error {
	req, err := http.NewRequest(method, c.base+path, nil)
	if err != nil {
		return fmt.Errorf("admin API: %w", err)
	}
	req.Header.Set(admin.CSRFHeader, "cli")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach the admin API at %s (is the orchestrator running, and is this its admin.listen?): %w",
			c.base, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("admin API: reading the answer: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		var e admin.APIError
		if json.Unmarshal(body, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(body))
		}
		return &apiError{status: resp.StatusCode, msg: e.Error}
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("admin API: unexpected answer: %w", err)
	}
	return nil
}

// apiError is a non-2xx answer of the admin API.
type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string { return fmt.Sprintf("%s (HTTP %d)", e.msg, e.status) }

// isNotFound reports whether err is the API's 404.
func isNotFound(err error) bool {
	var ae *apiError
	return errors.As(err, &ae) && ae.status == http.StatusNotFound
}
