package loadgen

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime/metrics"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

func TestLatencySummary(t *testing.T) {
	t.Parallel()
	h := newLatencyHist()
	for i := 1; i <= 1000; i++ {
		h.record(i, time.Duration(i)*time.Millisecond)
	}
	h.record(0, time.Hour) // beyond the range: clamped, not dropped
	got := h.summary()
	near := func(name string, got, want float64) {
		if math.Abs(got-want) > want*0.002 {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if got.Count != 1001 {
		t.Errorf("count = %d", got.Count)
	}
	near("p50", got.P50Ms, 501)
	near("p99", got.P99Ms, 991)
	near("p999", got.P999Ms, 1000)
	near("max", got.MaxMs, float64(histMax)/1000)
}

func TestRSSSlope(t *testing.T) {
	t.Parallel()
	var curve []RSSPoint
	for n := int64(0); n <= 18000; n += 1000 {
		rss := 50<<20 + 4000*n
		if n < 4000 { // start-up noise the slope must leave out
			rss += 7 << 20
		}
		curve = append(curve, RSSPoint{Conns: n, RSSBytes: rss})
	}
	if got := rssSlope(curve); math.Abs(got-4000) > 1e-6 {
		t.Errorf("slope = %v, want 4000", got)
	}
	if got := rssSlope(curve[:1]); got != 0 {
		t.Errorf("one point: slope = %v", got)
	}
}

func TestParseMetrics(t *testing.T) {
	t.Parallel()
	text := `# HELP go_goroutines Number of goroutines.
# TYPE go_goroutines gauge
go_goroutines 12
edgehub_connections_active 9876
edgehub_messages_in_total{type="join"} 5
edgehub_messages_in_total{type="publish"} 7
process_resident_memory_bytes 1.2345e+07
`
	m, err := parseMetrics(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]float64{
		"go_goroutines": 12, "edgehub_connections_active": 9876,
		"edgehub_messages_in_total": 12, "process_resident_memory_bytes": 12345000,
	} {
		if m[name] != want {
			t.Errorf("%s = %v, want %v", name, m[name], want)
		}
	}
}

func TestReadProcSelf(t *testing.T) {
	t.Parallel()
	s, err := readProc(0)
	if err != nil || s.RSS <= 0 {
		t.Fatalf("readProc(self) = %+v, %v", s, err)
	}
	if selfCores() < 1 {
		t.Error("no cores")
	}
}

func TestErrorKind(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("dial: %w", syscall.EADDRNOTAVAIL), kindNoPorts},
		{syscall.EMFILE, kindNoFiles},
		{fmt.Errorf("x: %w", syscall.ECONNREFUSED), "ECONNREFUSED"},
		{io.ErrUnexpectedEOF, "EOF"},
		{ws.StatusError(503), "HTTP 503"},
		{errors.New("odd"), "other: odd"},
	} {
		if got := errorKind(tc.err); got != tc.want {
			t.Errorf("errorKind(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	ok := Config{Scenario: "fanout", URL: "ws://127.0.0.1:8080/ws"}
	for _, tc := range []struct {
		name string
		edit func(*Config)
		bad  bool
	}{
		{"defaults", func(*Config) {}, false},
		{"localhost", func(c *Config) { c.URL = "ws://localhost:1/ws" }, false},
		{"unknown scenario", func(c *Config) { c.Scenario = "x" }, true},
		{"more rooms than conns", func(c *Config) { c.Conns, c.Rooms = 2, 3 }, true},
		{"tiny size", func(c *Config) { c.Size = 10 }, true},
		{"http url", func(c *Config) { c.URL = "http://127.0.0.1:1/ws" }, true},
		{"remote", func(c *Config) { c.URL = "ws://192.0.2.1:80/ws" }, true},
		{"remote allowed", func(c *Config) { c.URL, c.AllowRemote = "ws://192.0.2.1:80/ws", true }, false},
	} {
		c := ok
		tc.edit(&c)
		if err := c.withDefaults().validate(); (err != nil) != tc.bad {
			t.Errorf("%s: validate() = %v", tc.name, err)
		}
	}
}

// TestSummaryJSON pins the field names other tools (the plot, scripts,
// reviewers' jq) read.
func TestSummaryJSON(t *testing.T) {
	t.Parallel()
	r := NewResult(Config{Scenario: "fanout", URL: "ws://127.0.0.1:1/ws", Rate: 10}, Summary{
		Scenario:      "fanout",
		Delivery:      &DeliveryStats{Lost: 0, Latency: Latency{P99Ms: 1}},
		Server:        &ServerStats{RSSCurve: []RSSPoint{{1, 2, 3}}},
		LoaderLimited: true, LoaderLimitedReason: "x",
	}, []string{"edgehub-bench", "fanout"})
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, path := range [][]string{
		{"command"}, {"date"}, {"machine", "cores"}, {"machine", "kernel"}, {"machine", "go"},
		{"config", "rate"}, {"summary", "loaderLimited"}, {"summary", "loaderLimitedReason"},
		{"summary", "delivery", "lost"}, {"summary", "delivery", "latency", "p999Ms"},
		{"summary", "server", "rssCurve"}, {"summary", "connections", "upgrade", "p99Ms"},
	} {
		var v any = m
		for _, k := range path {
			obj, _ := v.(map[string]any)
			v = obj[k]
		}
		if v == nil {
			t.Errorf("%s missing in %s", strings.Join(path, "."), b)
		}
	}
	if _, ok := m["config"].(map[string]any)["apiKey"]; ok {
		t.Error("the API key is recorded")
	}
}

func TestSchedQuantile(t *testing.T) {
	t.Parallel()
	inf := math.Inf(1)
	before := &metrics.Float64Histogram{Counts: []uint64{5, 5, 5}, Buckets: []float64{0, 0.001, 0.01, inf}}
	after := &metrics.Float64Histogram{Counts: []uint64{95, 14, 6}, Buckets: before.Buckets}
	// 90 waits up to 1ms, 9 up to 10ms, 1 beyond: p50 is 1ms, p99 10ms, p100 the last finite bound.
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.5, time.Millisecond}, {0.99, 10 * time.Millisecond}, {1, 10 * time.Millisecond}} {
		if got := schedQuantile(before, after, tc.q); got != tc.want {
			t.Errorf("q%v = %v, want %v", tc.q, got, tc.want)
		}
	}
	if got := schedQuantile(after, after, 0.99); got != 0 {
		t.Errorf("no new samples: %v", got)
	}
	if readSched() == nil {
		t.Error("the runtime has no " + schedMetric)
	}
}

func TestParseRedisCPU(t *testing.T) {
	info := "# CPU\r\nused_cpu_sys:1.250000\r\nused_cpu_user:0.750000\r\nused_cpu_sys_children:9.0\r\n"
	if d, err := parseRedisCPU(info); err != nil || d != 2*time.Second {
		t.Errorf("parseRedisCPU = %v, %v; want 2s", d, err)
	}
	if _, err := parseRedisCPU("# CPU\r\nused_cpu_sys:1.0\r\n"); err == nil {
		t.Error("a body without used_cpu_user parsed")
	}
}
