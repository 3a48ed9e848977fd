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
	if testing.Short() {
		t.Skip("skipped in -short mode: builds and runs edgehub and k6")
	}
	k6, err := exec.LookPath("k6")
	if err != nil {
		t.Skip("k6 is not on PATH: install it with scripts/install-k6.sh")
	}
	node := edgehubtest.Start(t)
	// The bound only keeps a hung k6 from hanging the test; nothing here
	// asserts a duration.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, k6, "run", "--quiet", "--no-usage-report",
		"-e", "EDGEHUB_URL="+node.WS, "-e", "VUS=5", "-e", "DURATION=3s", "k6/chat.js")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("k6 run: %v\n%s", err, out)
	}
	t.Logf("k6:\n%s", out)
}
