// Package edgehubtest runs the real edgehub binary for tests: the
// end-to-end tests of cmd/edgehub and the load generator's tests in bench/
// talk to the node as it ships, never to a stand-in.
//
// A test package calls Main from its TestMain; Start then builds
// ./cmd/edgehub once for the whole test binary, runs it on a free 127.0.0.1
// port with a clean environment (no EDGEHUB_* variables), waits until
// GET /healthz answers 200, and kills it by pid when the test ends, logging
// the tail of its output if the test failed. The node is built in the core
// module's directory even from a test of the bench module, so it has the
// dependencies (and the netpoll patch) of a plain `go build ./cmd/edgehub`.
// Build compiles another main package of the test's own module.
package edgehubtest

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	module = "github.com/edgehub/edgehub"

	// startupTimeout bounds the wait for /healthz; it keeps a node that
	// never listens from hanging the test and asserts no duration.
	startupTimeout = 30 * time.Second
	killTimeout    = 10 * time.Second // SIGKILL until the process is reaped
	logTail        = 256 << 10        // bytes of output kept per node
	portRetries    = 3                // port taken between pick and bind
)

var (
	binDir    string // made by Main, removed when the tests are done
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Main is for TestMain: it runs the tests, removes the edgehub binary built
// for them, and exits with the tests' status.
func Main(m *testing.M) {
	dir, err := os.MkdirTemp("", "edgehubtest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "edgehubtest: cannot create a temp dir:", err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// Build compiles pkg, a main package of the test's module given by its
// path in the repository (e.g. "bench/cmd/edgehub-bench"), into the test's
// temporary directory as name and returns the binary's path.
func Build(t testing.TB, pkg, name string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), name)
	if err := goBuild("", path.Join(module, pkg), bin); err != nil {
		t.Fatal(err)
	}
	return bin
}

// goBuild runs go build for pkg in dir ("": the current directory).
func goBuild(dir, pkg, bin string) error {
	cmd := exec.Command("go", "build", "-o", bin, pkg)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
	}
	return nil
}

// moduleDir is the core module's directory: the checkout itself, or where
// the bench module's replace points.
func moduleDir() (string, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", module).Output()
	if err != nil {
		return "", fmt.Errorf("go list -m %s: %w", module, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// edgehub returns the binary built once for this test binary.
func edgehub(t testing.TB) string {
	t.Helper()
	if binDir == "" {
		t.Fatal("edgehubtest: the package's TestMain must call edgehubtest.Main(m)")
	}
	buildOnce.Do(func() {
		binPath = filepath.Join(binDir, "edgehub")
		var dir string
		if dir, buildErr = moduleDir(); buildErr == nil {
			buildErr = goBuild(dir, "./cmd/edgehub", binPath)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// Node is one running edgehub process.
type Node struct {
	Addr string // 127.0.0.1:PORT
	HTTP string // http://Addr
	WS   string // ws://Addr/ws
	PID  int

	cmd   *exec.Cmd
	out   *tailBuffer      // stdout and stderr
	done  chan struct{}    // closed when the process has exited
	state *os.ProcessState // set before done is closed
}

// Start runs edgehub with -listen on a free 127.0.0.1 port followed by args
// and returns once /healthz answers 200. A port taken between the pick and
// the bind is retried with another.
func Start(t testing.TB, args ...string) *Node {
	t.Helper()
	bin := edgehub(t)
	for attempt := 0; ; attempt++ {
		n, err := tryStart(t, bin, args)
		if err == nil {
			return n
		}
		if attempt < portRetries && strings.Contains(err.Error(), "address already in use") {
			continue
		}
		t.Fatalf("cannot start edgehub %v: %v", args, err)
	}
}

var healthClient = &http.Client{
	Timeout:   10 * time.Second,
	Transport: &http.Transport{DisableKeepAlives: true},
}

func tryStart(t testing.TB, bin string, args []string) (*Node, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()

	n := &Node{
		Addr: addr, HTTP: "http://" + addr, WS: "ws://" + addr + "/ws",
		out: &tailBuffer{max: logTail}, done: make(chan struct{}),
	}
	n.cmd = exec.Command(bin, append([]string{"-listen", addr}, args...)...)
	n.cmd.Env = cleanEnv()
	n.cmd.Stdout, n.cmd.Stderr = n.out, n.out
	if err := n.cmd.Start(); err != nil {
		return nil, err
	}
	n.PID = n.cmd.Process.Pid
	go func() {
		_ = n.cmd.Wait()
		n.state = n.cmd.ProcessState
		close(n.done)
	}()
	t.Cleanup(func() {
		if !n.Exited(0) {
			_ = n.cmd.Process.Kill() // by pid: only the process this test started
			if !n.Exited(killTimeout) {
				t.Errorf("edgehub pid %d did not exit after SIGKILL", n.PID)
			}
		}
		if t.Failed() {
			t.Logf("edgehub %v (pid %d) output (tail):\n%s", args, n.PID, n.Logs())
		}
	})

	deadline := time.Now().Add(startupTimeout)
	for {
		if n.Exited(0) {
			return nil, fmt.Errorf("exited before serving (%v): %s", n.state, n.Logs())
		}
		if resp, err := healthClient.Get(n.HTTP + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return n, nil
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("/healthz not 200 within %v: %s", startupTimeout, n.Logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// cleanEnv is this process's environment without EDGEHUB_* variables, so
// that a developer's settings do not change the node under test.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "EDGEHUB_") {
			env = append(env, kv)
		}
	}
	return env
}

// Signal sends sig to the node's process.
func (n *Node) Signal(sig os.Signal) error { return n.cmd.Process.Signal(sig) }

// Exited reports whether the process has exited, waiting up to d for it.
func (n *Node) Exited(d time.Duration) bool {
	select {
	case <-n.done:
		return true
	default:
	}
	if d <= 0 {
		return false
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-n.done:
		return true
	case <-timer.C:
		return false
	}
}

// ExitState is how the process exited, or nil while it runs; call it after
// Exited returned true.
func (n *Node) ExitState() *os.ProcessState {
	if !n.Exited(0) {
		return nil
	}
	return n.state
}

// Logs returns the tail of the process's stdout and stderr.
func (n *Node) Logs() string { return n.out.String() }

// tailBuffer keeps the last max bytes written to it; safe for concurrent use.
type tailBuffer struct {
	mu   sync.Mutex
	buf  []byte
	max  int
	lost int
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.max; over > 0 {
		b.lost += over
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.lost > 0 {
		return fmt.Sprintf("[... %d bytes dropped]\n%s", b.lost, b.buf)
	}
	return string(b.buf)
}
