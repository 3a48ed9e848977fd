package main

// The HTTP API on the WebSocket port (PROTOCOL.md "Server HTTP API",
// DESIGN.md "Observability") and the SIGTERM drain.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgehub/edgehub/cmd/edgehub/edgehubtest"
)

func TestHTTPAPI(t *testing.T) {
	t.Parallel()
	const key = "e2e-api-key"
	n := edgehubtest.Start(t, "-api-key", key, "-echo-delay", "10ms")
	bearerKey := "Bearer " + key

	t.Run("health", func(t *testing.T) {
		for _, path := range []string{"/healthz", "/readyz"} {
			if code, _, body := httpDo(t, "GET", n.HTTP+path, "", nil); code != http.StatusOK {
				t.Errorf("GET %s: %d %s, want 200", path, code, body)
			}
		}
	})

	t.Run("demo-page", func(t *testing.T) {
		code, hdr, body := httpDo(t, "GET", n.HTTP+"/", "", nil)
		if code != http.StatusOK || !strings.HasPrefix(hdr.Get("Content-Type"), "text/html") ||
			!strings.Contains(strings.ToLower(string(body)), "<html") {
			t.Errorf("GET /: %d %q, want 200 text/html with a page: %.200s", code, hdr.Get("Content-Type"), body)
		}
	})

	t.Run("publish", func(t *testing.T) {
		room := uniqueRoom("api")
		member := dial(t, n)
		member.join(t, room)
		good := []byte(fmt.Sprintf(`{"room":%q,"data":{"from api": [1, "ü"] }}`, room))
		for _, tc := range []struct {
			name, auth string
			body       []byte
			want       int
		}{
			{"no-key", "", good, 401},
			{"wrong-key", "Bearer nope", good, 401},
			{"key-without-bearer", key, good, 401},
			{"bad-json", bearerKey, []byte(`{"room":`), 400},
			{"too-large", bearerKey, []byte(fmt.Sprintf(`{"room":%q,"data":"%s"}`, room, strings.Repeat("a", 65537))), 413},
		} {
			code, _, body := httpDo(t, "POST", n.HTTP+"/api/publish", tc.auth, tc.body)
			if code != tc.want {
				t.Errorf("%s: status %d, want %d: %s", tc.name, code, tc.want, body)
			}
			if tc.want == 413 {
				var e struct{ Code string }
				if json.Unmarshal(body, &e) != nil || e.Code != "too_large" {
					t.Errorf("413 body %s, want code too_large", body)
				}
			}
		}
		if got := member.sync(t); len(got) != 0 {
			t.Fatalf("a refused publish was delivered: %s", got[0])
		}
		code, _, body := httpDo(t, "POST", n.HTTP+"/api/publish", bearerKey, good)
		var res struct{ Offset *int64 }
		if code != 200 || json.Unmarshal(body, &res) != nil || res.Offset == nil || *res.Offset != 1 {
			t.Fatalf("publish: %d %s, want 200 {\"offset\":1}", code, body)
		}
		m := member.expect(t, "message")
		if m.str(t, "from") != "api" || m.num(t, "offset") != 1 || string(m.field("data")) != `{"from api": [1, "ü"] }` {
			t.Errorf("member got %s, want from api, offset 1, the data byte-for-byte", m)
		}
	})

	t.Run("fleet-and-queues", func(t *testing.T) {
		for _, path := range []string{"/api/fleet", "/api/queues"} {
			if code, _, _ := httpDo(t, "GET", n.HTTP+path, "", nil); code != 401 {
				t.Errorf("GET %s without the key: %d, want 401", path, code)
			}
		}
		code, _, body := httpDo(t, "GET", n.HTTP+"/api/fleet", bearerKey, nil)
		var fleet struct {
			Nodes []map[string]any
		}
		if code != 200 || json.Unmarshal(body, &fleet) != nil || len(fleet.Nodes) != 1 {
			t.Fatalf("GET /api/fleet: %d %s, want {\"nodes\":[one node]}", code, body)
		}
		nd := fleet.Nodes[0]
		if id, _ := nd["id"].(string); id == "" {
			t.Errorf("fleet node without id: %s", body)
		}
		for _, k := range []string{"conns", "rooms"} {
			if _, ok := nd[k].(float64); !ok {
				t.Errorf("fleet node without a number %q: %s", k, body)
			}
		}

		// PROTOCOL.md: "per AI queue: length, pending, consumers", no exact
		// shape. We accept any JSON with, for the queue "default", an object
		// holding the three numbers (either {"queue":"default",...} in a
		// list or keyed by the queue's name).
		code, _, body = httpDo(t, "GET", n.HTTP+"/api/queues", bearerKey, nil)
		var v any
		if code != 200 || json.Unmarshal(body, &v) != nil {
			t.Fatalf("GET /api/queues: %d %s", code, body)
		}
		if !findQueue(v, "default", false) {
			t.Errorf("GET /api/queues: no queue \"default\" with length, pending, consumers: %s", body)
		}
	})

	t.Run("metrics", func(t *testing.T) {
		c := dial(t, n)
		room := uniqueRoom("metrics")
		c.join(t, room)
		c.send(t, publishMsg(room, "m", "1"))
		c.sync(t)
		job := askAI(t, c, map[string]any{"message": "a b"})
		aiChunks(t, c, job, 0, "")

		page := metrics(t, n)
		for _, name := range []string{
			"go_goroutines", "process_resident_memory_bytes",
			"edgehub_connections_active", "edgehub_connections_total",
			"edgehub_messages_out_total", "edgehub_slow_consumer_closes_total",
			"edgehub_rooms_active",
		} {
			if !hasMetric(page, name) {
				t.Errorf("/metrics lacks %s", name)
			}
		}
		for _, series := range []string{
			`edgehub_messages_in_total{type="publish"}`,
			"edgehub_connections_active", "edgehub_connections_total",
			"edgehub_messages_out_total", "edgehub_rooms_active",
		} {
			if v, ok := metricValue(page, series); !ok || v < 1 {
				t.Errorf("/metrics: %s = %v (present %v), want >= 1", series, v, ok)
			}
		}
		// The job's queue depends on the routing rules: any queue will do.
		if !strings.Contains(page, `edgehub_ai_jobs_total{queue="`) || !strings.Contains(page, `,state="done"} `) {
			t.Errorf(`/metrics lacks edgehub_ai_jobs_total{queue="...",state="done"} after a job`)
		}
		if t.Failed() {
			t.Logf("/metrics:\n%s", page)
		}
	})
}

// findQueue looks for an object describing queue name with numbers length,
// pending and consumers anywhere in v.
func findQueue(v any, name string, named bool) bool {
	switch x := v.(type) {
	case map[string]any:
		_, l := x["length"].(float64)
		_, p := x["pending"].(float64)
		_, c := x["consumers"].(float64)
		if l && p && c && (named || x["queue"] == name || x["name"] == name) {
			return true
		}
		for k, e := range x {
			if findQueue(e, name, k == name) {
				return true
			}
		}
	case []any:
		for _, e := range x {
			if findQueue(e, name, false) {
				return true
			}
		}
	}
	return false
}

func TestDrain(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: waits for a drain (-short)")
	}
	t.Parallel()
	// -close-linger is longer than the test: the node waits that long for
	// a client's answer to its close frame, so the raw client below, which
	// reads but never answers, keeps the node draining until it closes its
	// own socket, however slowly this machine runs. -drain-timeout bounds
	// the drain above that.
	n := edgehubtest.Start(t, "-drain-timeout", "60s", "-close-linger", "60s")

	c := dial(t, n)
	r := upgraded(t, n)

	if err := n.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}

	d := r.expect(t, "drain")
	if d.num(t, "retryAfterMs") <= 0 || d.str(t, "reason") == "" {
		t.Errorf("drain: %s, want retryAfterMs > 0 and a reason", d)
	}
	code, _, msgs := c.readClosed(t, 10*time.Second)
	if len(msgs) != 1 || msgs[0].Type != "drain" || msgs[0].num(t, "retryAfterMs") <= 0 || msgs[0].str(t, "reason") == "" {
		t.Errorf("client: got %v before the close, want one drain with retryAfterMs > 0 and a reason", msgs)
	}
	if code != 1001 {
		t.Errorf("client: close %d after drain, want 1001", code)
	}
	r.expectClose(t, 1001)

	// The raw client holds its socket: the node is still draining.
	if n.Exited(0) {
		t.Fatal("the node exited while a client it closed had not answered")
	}
	if code, _, body := httpDo(t, "GET", n.HTTP+"/healthz", "", nil); code != http.StatusServiceUnavailable {
		t.Errorf("GET /healthz during the drain: %d %s, want 503", code, body)
	}
	u := rawDial(t, n.Addr)
	u.write(t, []byte(handshakeRequest(n.Addr)))
	if resp, body := u.response(t); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("upgrade during the drain: %d %s, want 503", resp.StatusCode, body)
	}

	// The last clients go (the 503 was answered with a close the node
	// also lingers on): the drain ends.
	u.conn.Close()
	r.conn.Close()
	if !n.Exited(15 * time.Second) {
		t.Fatal("the node did not exit within 15 s of its last client leaving")
	}
	if st := n.ExitState(); !st.Exited() || st.ExitCode() != 0 {
		t.Errorf("exit status after the drain: %v, want 0", st)
	}
}
