package main

// 10,000 idle connections (goroutines and memory per connection), and the
// JavaScript clients (Node's ws, the demo page in headless Chromium).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/edgehub/edgehub/cmd/edgehub/edgehubtest"
)

// raiseNoFile raises this process's open-file limit to its hard limit (the
// node started afterwards inherits it) and returns the new soft limit.
func raiseNoFile(t *testing.T) uint64 {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			t.Fatal(err)
		}
	}
	return lim.Cur
}

// openIdle upgrades one raw connection and reads the 101 and the welcome,
// without a goroutine or buffer kept afterwards.
func openIdle(addr string) (net.Conn, error) {
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	_ = conn.SetDeadline(time.Now().Add(15 * time.Second))
	if _, err := conn.Write([]byte(handshakeRequest(addr))); err != nil {
		conn.Close()
		return nil, err
	}
	var buf []byte
	var tmp [1024]byte
	for {
		n, err := conn.Read(tmp[:])
		buf = append(buf, tmp[:n]...)
		if i := bytes.Index(buf, []byte("\r\n\r\n")); i >= 0 {
			if !bytes.HasPrefix(buf, []byte("HTTP/1.1 101 ")) {
				conn.Close()
				return nil, fmt.Errorf("handshake answer %.40q", buf)
			}
			if f := buf[i+4:]; frameComplete(f) {
				if f[0] != 0x81 || !bytes.Contains(f, []byte(`"welcome"`)) {
					conn.Close()
					return nil, fmt.Errorf("first frame is not a welcome: %q", f)
				}
				_ = conn.SetDeadline(time.Time{})
				return conn, nil
			}
		}
		if err != nil {
			conn.Close()
			return nil, err
		}
	}
}

// frameComplete reports whether b starts with a whole unmasked frame.
func frameComplete(b []byte) bool {
	if len(b) < 2 {
		return false
	}
	n, hdr := int(b[1]&0x7f), 2
	switch n {
	case 126:
		if len(b) < 4 {
			return false
		}
		n, hdr = int(b[2])<<8|int(b[3]), 4
	case 127:
		return false // a welcome is never that large
	}
	return len(b) >= hdr+n
}

func TestIdle10K(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: 10,000 connections (-short)")
	}
	const total, first, workers = 10000, 1000, 8
	if lim := raiseNoFile(t); lim < total+500 {
		t.Skipf("RLIMIT_NOFILE hard limit %d is too low for %d connections", lim, total)
	}
	// A heartbeat longer than the test: the connections stay idle, with no
	// ping to answer, the state this test measures.
	n := edgehubtest.Start(t, "-heartbeat", "2m")

	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	open := func(count int) {
		t.Helper()
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		per := count / workers
		for range workers {
			wg.Go(func() {
				for range per {
					c, err := openIdle(n.Addr)
					if err != nil {
						errs <- err
						return
					}
					mu.Lock()
					conns = append(conns, c)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("after %d connections: %v", len(conns), err)
		}
	}

	start := time.Now()
	open(first)
	rss1k := vmRSS(t, n.PID)
	open(total - first)
	took := time.Since(start)
	time.Sleep(500 * time.Millisecond) // let the node's per-upgrade work settle
	rss10k := vmRSS(t, n.PID)

	page := metrics(t, n)
	goroutines, ok := metricValue(page, "go_goroutines")
	if !ok {
		t.Fatal("/metrics has no go_goroutines")
	}
	if active, _ := metricValue(page, "edgehub_connections_active"); active < total {
		t.Errorf("edgehub_connections_active = %v, want >= %d", active, total)
	}
	perConn := (rss10k - rss1k) / (total - first)
	t.Logf("IDLE10K goroutines=%d rss_per_conn=%d (VmRSS %d MiB at %d conns, %d MiB at %d; %d connections opened in %v)",
		int(goroutines), perConn, rss1k>>20, first, rss10k>>20, len(conns), len(conns), took.Round(time.Millisecond))
	if goroutines >= 100 {
		t.Errorf("go_goroutines = %v with %d idle connections, want < 100", goroutines, len(conns))
	}
}

func TestJSClients(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "scripts", "e2e", "node_modules")); err != nil {
		t.Skip("scripts/e2e/node_modules is missing: run scripts/install-test-deps.sh")
	}
	n := edgehubtest.Start(t, "-api-key", "testkey", "-heartbeat", "2s")

	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "--test", "scripts/e2e/")
	cmd.Dir = root
	// SCREENSHOT_DIR, if set, is inherited with the rest of the environment.
	cmd.Env = append(os.Environ(), "EDGEHUB_URL="+n.HTTP)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatalf("node --test scripts/e2e/ did not finish within 150 s:\n%s", out)
	}
	if err != nil {
		t.Fatalf("node --test scripts/e2e/: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) > 10 {
		lines = lines[len(lines)-10:]
	}
	t.Logf("node --test scripts/e2e/:\n%s", strings.Join(lines, "\n"))
}
