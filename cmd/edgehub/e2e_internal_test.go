package main

import (
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/edgehub/edgehub/cmd/edgehub/edgehubtest"
)

// TestInternalListen: with -internal-listen, /metrics and /api/* answer
// only there, and the public port keeps /ws, /healthz, /readyz and the demo
// page alone.
func TestInternalListen(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped in -short mode: runs the edgehub binary")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	internal := "http://" + l.Addr().String()
	l.Close()
	n := edgehubtest.Start(t, "-internal-listen", l.Addr().String())

	public := []struct{ method, path string }{
		{"GET", "/healthz"}, {"GET", "/readyz"}, {"GET", "/"},
	}
	for _, r := range public {
		if code, _, body := httpDo(t, r.method, n.HTTP+r.path, "", nil); code != http.StatusOK {
			t.Errorf("public %s %s: %d %s", r.method, r.path, code, body)
		}
		if code, _, _ := httpDo(t, r.method, internal+r.path, "", nil); code != http.StatusNotFound {
			t.Errorf("internal %s %s: %d, want 404", r.method, r.path, code)
		}
	}
	c := dial(t, n) // /ws stays public
	c.join(t, "internal-test")

	publish := []byte(`{"room":"internal-test","data":"hi"}`)
	internalOnly := []struct {
		method, path string
		body         []byte
	}{
		{"GET", "/metrics", nil}, {"GET", "/api/fleet", nil}, {"GET", "/api/queues", nil},
		{"POST", "/api/publish", publish},
	}
	for _, r := range internalOnly {
		if code, _, body := httpDo(t, r.method, n.HTTP+r.path, "", r.body); code != http.StatusNotFound {
			t.Errorf("public %s %s: %d %s, want 404", r.method, r.path, code, body)
		}
		if code, _, body := httpDo(t, r.method, internal+r.path, "", r.body); code != http.StatusOK {
			t.Errorf("internal %s %s: %d %s", r.method, r.path, code, body)
		}
	}
	// Paths that clean to an internal one, and API routes added later,
	// stay off the public port.
	for _, p := range []string{"/./metrics", "//api/fleet", "/api/", "/api/revoke", "/web/../metrics"} {
		if code, _, _ := httpDo(t, "GET", n.HTTP+p, "", nil); code == http.StatusOK {
			t.Errorf("public GET %s: 200", p)
		}
	}
	// The publish above went through the internal API to the public client.
	if m := c.expect(t, "message"); !strings.Contains(m.String(), `"data":"hi"`) {
		t.Errorf("message: %s", m)
	}
	_, _, page := httpDo(t, "GET", internal+"/metrics", "", nil)
	if v, ok := metricValue(string(page), "edgehub_connections_active"); !ok || v != 1 {
		t.Errorf("edgehub_connections_active on the internal port = %v (found %v), want 1", v, ok)
	}
}

// TestFileLimitWarning: a node whose open-file limit is below -max-conns
// says so at start; one within its limit does not.
func TestFileLimitWarning(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped in -short mode: runs the edgehub binary")
	}
	const warning = "open-file limit below -max-conns"
	over := edgehubtest.Start(t, "-max-conns", "100000000") // above any fs.nr_open
	under := edgehubtest.Start(t, "-max-conns", "100")
	deadline := time.Now().Add(10 * time.Second) // bounds the wait for the log line; asserts no duration
	for !strings.Contains(over.Logs(), warning) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(over.Logs(), warning) || !strings.Contains(over.Logs(), "conns_allowed=") {
		t.Errorf("-max-conns 100000000: no warning naming the connections allowed:\n%s", over.Logs())
	}
	if strings.Contains(under.Logs(), warning) {
		t.Errorf("-max-conns 100 warns:\n%s", under.Logs())
	}
}
