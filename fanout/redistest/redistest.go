// Package redistest starts real redis-server processes for tests: a single
// server on a free loopback port, or a Redis Cluster of several masters.
// Tests never talk to a mock of Redis.
//
// Every server runs in the test's temporary directory and is killed by pid
// when the test ends. Kill and Restart let failover tests take a server
// away and bring it back on the same port with its data (AOF with
// appendfsync always, so every acknowledged write survives a kill -9).
//
// Without redis-server on the PATH the calling test fails, unless
// testing.Short() is set: then it is skipped, which keeps `go test -short`
// a quick loop without Redis.
package redistest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// startTimeout bounds the wait for a server to answer PING; it keeps a
// server that never starts from hanging a test and asserts no duration.
const startTimeout = 15 * time.Second

// Server is one redis-server process.
type Server struct {
	t    testing.TB
	Addr string // host:port
	dir  string
	args []string

	mu  sync.Mutex
	cmd *exec.Cmd
}

// URL is the server's redis:// URL.
func (s *Server) URL() string { return "redis://" + s.Addr }

// Start runs a standalone redis-server on a free loopback port.
func Start(t testing.TB, extra ...string) *Server {
	t.Helper()
	return start(t, extra...)
}

func start(t testing.TB, extra ...string) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if testing.Short() {
			t.Skip("redis-server not installed (make deps installs it)")
		}
		t.Fatal("redis-server not installed: run `make deps` (scripts/install-test-deps.sh)")
	}
	dir := t.TempDir()
	s := &Server{t: t, dir: dir}
	for attempt := 0; ; attempt++ {
		port := freePort(t)
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		s.args = append([]string{
			"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
			"--save", "", "--appendonly", "yes", "--appendfsync", "always",
			"--protected-mode", "no", "--daemonize", "no", "--loglevel", "warning",
		}, extra...)
		err = s.run(bin)
		if err == nil {
			break
		}
		if attempt == 2 {
			t.Fatalf("redis-server: %v", err)
		}
	}
	t.Cleanup(s.Kill)
	return s
}

func (s *Server) run(bin string) error {
	cmd := exec.Command(bin, s.args...)
	cmd.Dir = s.dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return err
	}
	s.mu.Lock()
	s.cmd = cmd
	s.mu.Unlock()
	deadline := time.Now().Add(startTimeout)
	for time.Now().Before(deadline) {
		if _, err := s.Do("PING"); err == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.Kill()
	return fmt.Errorf("did not answer PING on %s: %s", s.Addr, out.String())
}

// Kill stops the server with SIGKILL (kill -9) and waits for it.
func (s *Server) Kill() {
	s.mu.Lock()
	cmd := s.cmd
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
}

// Restart starts the server again on the same port with the same data
// directory (its AOF), after Kill.
func (s *Server) Restart() {
	s.t.Helper()
	bin, _ := exec.LookPath("redis-server")
	if err := s.run(bin); err != nil {
		s.t.Fatalf("restart redis-server: %v", err)
	}
}

// Do runs one command with redis-cli-like semantics over a raw RESP2
// connection and returns the reply as text (arrays joined by newlines).
// It is for test set-up and fault injection (CLIENT KILL, FLUSHALL,
// CLUSTER ...), not for what the code under test does.
func (s *Server) Do(args ...string) (string, error) {
	return Do(s.Addr, args...)
}

// MustDo is Do that fails the test on an error.
func (s *Server) MustDo(args ...string) string {
	s.t.Helper()
	out, err := s.Do(args...)
	if err != nil {
		s.t.Fatalf("redis %v: %v", args, err)
	}
	return out
}

// Do runs one command against addr; see Server.Do.
func Do(addr string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := c.Write([]byte(b.String())); err != nil {
		return "", err
	}
	r := &respReader{c: c}
	return r.reply()
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Cluster is a Redis Cluster of masters without replicas.
type Cluster struct {
	Servers []*Server
}

// URL is the cluster's redis-cluster:// URL (its first node; clients
// discover the rest).
func (c *Cluster) URL() string { return "redis-cluster://" + c.Servers[0].Addr }

// StartCluster runs n masters with cluster mode on and joins them with
// redis-cli --cluster create, then waits for the cluster state to be ok.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	c := &Cluster{}
	addrs := make([]string, n)
	for i := range n {
		s := start(t, "--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(t.TempDir(), "nodes.conf"),
			"--cluster-node-timeout", "2000")
		c.Servers = append(c.Servers, s)
		addrs[i] = s.Addr
	}
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Fatal("redis-cli not installed (it comes with redis-server: make deps)")
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command(cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	deadline := time.Now().Add(startTimeout)
	for _, s := range c.Servers {
		for {
			info, _ := s.Do("CLUSTER", "INFO")
			if strings.Contains(info, "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("cluster not ok on %s: %s", s.Addr, info)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return c
}

// Dir is where the server keeps its data.
func (s *Server) Dir() string { return s.dir }

// PID is the server's process id while it runs, 0 otherwise.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

func init() {
	// Keep a stray REDIS_URL from pointing tests at someone's real Redis:
	// tests take addresses from this package only.
	_ = os.Unsetenv("REDIS_URL")
}
