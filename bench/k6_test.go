package bench_test

import (
	"context"
	"os/exec"
	"testing"
	"time"

	"github.com/edgehub/edgehub/cmd/edgehub/edgehubtest"
)

func TestMain(m *testing.M) { edgehubtest.Main(m) }

// TestK6Chat runs bench/k6/chat.js for a few seconds against a real node;
// the script's thresholds make k6 exit non-zero on any failed check.
func TestK6Chat(t *testing.T) {
	node := startForK6(t)
	runK6(t, "k6/chat.js", "EDGEHUB_URL="+node.WS, "VUS=5", "DURATION=3s")
}

// TestK6Connect ramps bench/k6/connect.js to 200 connections and holds
// them; its probe reads from the node's /metrics that it holds all 200.
func TestK6Connect(t *testing.T) {
	node := startForK6(t)
	runK6(t, "k6/connect.js", "EDGEHUB_URL="+node.WS, "CONNS=200", "RAMP=2s", "HOLD=3s",
		"METRICS_URL="+node.HTTP+"/metrics")
}

// TestK6AI ramps bench/k6/ai.js to 100 VUs, each asking the echo backend
// and checking its answer word for word.
func TestK6AI(t *testing.T) {
	node := startForK6(t, "-ai-workers", "100")
	runK6(t, "k6/ai.js", "EDGEHUB_URL="+node.WS, "VUS=100", "RAMP=2s", "HOLD=3s")
}

func startForK6(t *testing.T, args ...string) *edgehubtest.Node {
	t.Helper()
	if testing.Short() {
		t.Skip("skipped in -short mode: builds and runs edgehub and k6")
	}
	if _, err := exec.LookPath("k6"); err != nil {
		t.Skip("k6 is not on PATH: install it with scripts/install-k6.sh")
	}
	return edgehubtest.Start(t, args...)
}

// runK6 runs a k6 script with -e for each env entry; k6 exits non-zero when
// a threshold fails.
func runK6(t *testing.T, script string, env ...string) {
	t.Helper()
	k6, err := exec.LookPath("k6")
	if err != nil {
		t.Skip("k6 is not on PATH: install it with scripts/install-k6.sh")
	}
	args := []string{"run", "--quiet", "--no-usage-report"}
	for _, e := range env {
		args = append(args, "-e", e)
	}
	// The bound only keeps a hung k6 from hanging the test; nothing here
	// asserts a duration.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, k6, append(args, script)...).CombinedOutput()
	if err != nil {
		t.Fatalf("k6 run %s: %v\n%s", script, err, out)
	}
	t.Logf("k6 %s:\n%s", script, out)
}
