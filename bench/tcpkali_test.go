package bench_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgehub/edgehub/cmd/edgehub/edgehubtest"
)

// TestTcpkali runs bench/tcpkali/run.sh storm, rate and soak for a few
// seconds against a real node. Without tcpkali it checks that the script
// says so (exit 3) and skips.
func TestTcpkali(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped in -short mode: builds and runs edgehub and tcpkali")
	}
	if _, err := exec.LookPath("tcpkali"); err != nil {
		out, err := tcpkali(t, []string{"PATH=" + pathWithout(t, "tcpkali")}, "storm")
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 || !strings.Contains(out, "tcpkali is not installed") {
			t.Fatalf("run.sh without tcpkali: %v, want exit 3 saying it is not installed:\n%s", err, out)
		}
		t.Skip("tcpkali is not installed (not packaged in Debian bookworm; bench/tcpkali/README.md says how to build it): storm, rate and soak not run")
	}
	// tcpkali answers no pings: a heartbeat longer than the runs keeps the
	// held connections from being closed as idle.
	node := edgehubtest.Start(t, "-heartbeat", "10m")
	env := []string{"CONNS=500", "CONNECT_RATE=1000", "DURATION=5s", "RATE=2"}

	out, err := tcpkali(t, env, "storm", node.Addr)
	if err != nil || !strings.Contains(out, "the node held at most 500 of 500 connections") {
		t.Errorf("storm: %v\n%s", err, out)
	}
	out, err = tcpkali(t, env, "rate", node.Addr)
	if err != nil || !strings.Contains(out, "latency") {
		t.Errorf("rate: %v, want latency percentiles\n%s", err, out)
	}
	out, err = tcpkali(t, env, "soak", node.Addr)
	if err != nil || !strings.Contains(out, "node before: rss=") || !strings.Contains(out, "node after: rss=") {
		t.Errorf("soak: %v\n%s", err, out)
	}
}

func tcpkali(t *testing.T, env []string, args ...string) (string, error) {
	t.Helper()
	// The bound only keeps a hung run from hanging the test.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", append([]string{"tcpkali/run.sh"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	t.Logf("run.sh %v:\n%s", args, out)
	return string(out), err
}

// pathWithout is $PATH without the directories that hold name.
func pathWithout(t *testing.T, name string) string {
	var keep []string
	for _, d := range filepath.SplitList(os.Getenv("PATH")) {
		if _, err := os.Stat(filepath.Join(d, name)); err != nil {
			keep = append(keep, d)
		}
	}
	return strings.Join(keep, string(filepath.ListSeparator))
}
