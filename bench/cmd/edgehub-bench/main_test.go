package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/edgehub/edgehub/bench/loadgen"
	"github.com/edgehub/edgehub/cmd/edgehub/edgehubtest"
)

func TestMain(m *testing.M) { edgehubtest.Main(m) }

// TestCLI runs the built command against a real node and checks that
// stdout is one Result, that the digest goes to stderr, and that plot
// renders from what it wrote.
func TestCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped in -short mode: builds and runs edgehub")
	}
	node := edgehubtest.Start(t)
	bin := edgehubtest.Build(t, "bench/cmd/edgehub-bench", "edgehub-bench")
	dir := t.TempDir()

	cmd := exec.Command(bin, "fanout", "-url", node.WS, "-server-pid", strconv.Itoa(node.PID),
		"-conns", "20", "-rate", "5", "-duration", "1s", "-sources", "127.0.0.2,127.0.0.3")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%v: %v\n%s", cmd.Args, err, stderr.String())
	}
	var r loadgen.Result
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("stdout is not a Result: %v\n%s", err, out)
	}
	if len(r.Command) < 2 || r.Command[1] != "fanout" || r.Date == "" || r.Machine.Cores < 1 || r.Machine.Go == "" {
		t.Errorf("result header = %+v %q %+v", r.Command, r.Date, r.Machine)
	}
	if d := r.Summary.Delivery; d == nil || d.Lost != 0 || d.Received != 5*20 {
		t.Errorf("delivery = %+v", d)
	}
	if !strings.HasPrefix(stderr.String(), "fanout: 20 connected of 20") {
		t.Errorf("stderr = %q", stderr.String())
	}

	// An idle run gives the RSS chart its curve.
	idle, err := exec.Command(bin, "idle", "-url", node.WS, "-server-pid", strconv.Itoa(node.PID),
		"-conns", "20", "-step", "5", "-duration", "100ms").Output()
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for name, b := range map[string][]byte{"fanout.json": out, "idle.json": idle} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, p)
	}
	plotOut, err := exec.Command(bin, append([]string{"plot", "-o", dir}, files...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("plot: %v\n%s", err, plotOut)
	}
	for _, name := range []string{"rss-vs-conns.png", "latency-vs-rate.png"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("plot did not write %s: %s", name, plotOut)
		}
	}
}

func TestUnknownScenario(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped in -short mode: builds the command")
	}
	bin := edgehubtest.Build(t, "bench/cmd/edgehub-bench", "edgehub-bench")
	err := exec.Command(bin, "nope").Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
		t.Errorf("unknown scenario: %v, want exit status 2", err)
	}
}
