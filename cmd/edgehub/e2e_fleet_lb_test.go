package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/edgehub/edgehub/cmd/edgehub/edgehubtest"
)

// TestFleetBehindLoadBalancer runs scripts/fleet: Redis, 3 nodes and
// workers behind haproxy, then behind nginx, each terminating wss://. The
// k6 chat and AI scripts pass their thresholds through the balancer; then
// one node gets SIGTERM while clients are on it: they get `drain`,
// reconnect through the balancer to the other nodes and recover every
// message published meanwhile. `scripts/fleet down` stops everything,
// which is checked by pid.
func TestFleetBehindLoadBalancer(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped in -short mode: a fleet of processes behind haproxy and nginx")
	}
	for _, c := range []string{"haproxy", "nginx", "redis-server", "openssl", "curl"} {
		if _, err := exec.LookPath(c); err != nil {
			if _, err := os.Stat("/usr/sbin/" + c); err != nil {
				t.Fatalf("%s is not installed: run scripts/install-test-deps.sh", c)
			}
		}
	}
	runK6 := func(t *testing.T, f *lbFleet, runs ...[]string) {
		k6, err := exec.LookPath("k6")
		if err != nil {
			t.Skip("k6 is not on PATH: install it with scripts/install-k6.sh")
		}
		for _, r := range runs {
			f.k6(t, k6, r[0], r[1:]...)
		}
	}
	t.Run("haproxy", func(t *testing.T) {
		f := fleetUp(t, "-nodes", "3", "-workers", "2", "-lb", "haproxy")
		t.Run("k6 through the balancer", func(t *testing.T) {
			runK6(t, f, []string{"chat.js", "VUS=10", "DURATION=4s"}, []string{"ai.js", "VUS=20", "RAMP=2s", "HOLD=3s"})
		})
		t.Run("drain one node", f.drainOne)
	})
	// nginx (open source) has no active health checks: the drained
	// clients' upgrades meet the draining node's 503 and go on to another.
	t.Run("nginx", func(t *testing.T) {
		f := fleetUp(t, "-nodes", "3", "-workers", "1", "-lb", "nginx")
		t.Run("k6 through the balancer", func(t *testing.T) {
			runK6(t, f, []string{"ai.js", "VUS=10", "RAMP=1s", "HOLD=2s"})
		})
		t.Run("drain one node", f.drainOne)
	})
}

// lbFleet is a fleet started by scripts/fleet in a temporary directory.
type lbFleet struct {
	dir  string
	env  map[string]string // the fleet's env file
	pids map[string]int    // process name -> pid
	tls  *tls.Config       // trusts the fleet's certificate
}

func fleetUp(t *testing.T, args ...string) *lbFleet {
	t.Helper()
	script, err := filepath.Abs("../../scripts/fleet")
	if err != nil {
		t.Fatal(err)
	}
	node := edgehubtest.Build(t, "cmd/edgehub", "edgehub")
	worker := edgehubtest.Build(t, "cmd/edgehub-worker", "edgehub-worker")
	f := &lbFleet{dir: t.TempDir()}
	env := append(os.Environ(), "PATH="+os.Getenv("PATH")+":/usr/sbin",
		"EDGEHUB_FLEET_DIR="+f.dir, "EDGEHUB_BIN="+node, "EDGEHUB_WORKER_BIN="+worker,
		"EDGEHUB_FLEET_DRAIN_TIMEOUT=10s")
	run := func(ctx context.Context, arg ...string) ([]byte, error) {
		cmd := exec.CommandContext(ctx, "bash", append([]string{script}, arg...)...)
		cmd.Env = env
		return cmd.CombinedOutput()
	}
	t.Cleanup(func() {
		if t.Failed() {
			// A node that stopped answering shows why in its log: Go
			// prints every goroutine's stack at SIGQUIT.
			for name, pid := range f.pids {
				if strings.HasPrefix(name, "node") && alive(pid) {
					_ = syscall.Kill(pid, syscall.SIGQUIT)
				}
			}
			time.Sleep(time.Second)
		}
		// down stops what up started, by pid; check that nothing is left.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		out, err := run(ctx, "down")
		t.Logf("scripts/fleet down: %v\n%s", err, out)
		for name, pid := range f.pids {
			if alive(pid) {
				t.Errorf("%s (pid %d) still runs after scripts/fleet down", name, pid)
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		if t.Failed() {
			logs, _ := filepath.Glob(filepath.Join(f.dir, "logs", "*.log"))
			for _, l := range logs {
				b, _ := os.ReadFile(l)
				t.Logf("--- %s (tail)\n%s", filepath.Base(l), tail(b, 60000))
			}
		}
	})
	// scripts/fleet takes 100 ports from a base. up refuses a port that is
	// taken, before or while it starts (a free port can be taken between
	// its check and the bind by another test's outgoing connection or
	// listener), so retry with another base.
	bases := fleetBases(t)
	for attempt := 0; ; attempt++ {
		base := bases[rand.IntN(len(bases))]
		env = append(env, "EDGEHUB_FLEET_PORT="+strconv.Itoa(base))
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		out, err := run(ctx, append([]string{"up"}, args...)...)
		cancel()
		t.Logf("scripts/fleet up %v (base %d): %v\n%s", args, base, err, out)
		if err == nil {
			break
		}
		if attempt == 7 || !bytes.Contains(out, []byte("is taken")) {
			t.Fatalf("scripts/fleet up: %v", err)
		}
	}
	f.env = readKV(t, filepath.Join(f.dir, "env"))
	f.pids = map[string]int{}
	b, err := os.ReadFile(filepath.Join(f.dir, "pids"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var name, bin string
		var pid int
		if _, err := fmt.Sscan(line, &name, &pid, &bin); err != nil {
			t.Fatalf("pids line %q: %v", line, err)
		}
		f.pids[name] = pid
	}
	pem, err := os.ReadFile(f.env["CERT"])
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("cannot read the fleet's certificate")
	}
	f.tls = &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
	out, _ := run(context.Background(), "status")
	t.Logf("scripts/fleet status:\n%s", out)
	return f
}

// fleetBases are port bases for scripts/fleet outside the kernel's
// ephemeral range (net.ipv4.ip_local_port_range), where no outgoing
// connection takes a port (10000-32600 and 61000-65400 with Linux's
// default 32768-60999; 65100-65400 with 1024-65000). Where the range
// leaves no room, bases across 20000-31900, and up's retry covers a
// collision.
func fleetBases(t *testing.T) []int {
	t.Helper()
	var lo, hi int
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		_, err = fmt.Sscan(string(b), &lo, &hi)
	}
	if err != nil {
		t.Fatalf("ip_local_port_range: %v", err)
	}
	var bases []int
	for base := 10000; base+99 <= 65535; base += 100 {
		if base+99 < lo || base > hi {
			bases = append(bases, base)
		}
	}
	if len(bases) == 0 {
		for base := 20000; base <= 31900; base += 100 {
			bases = append(bases, base)
		}
	}
	return bases
}

// k6 runs a script from bench/k6 against the balancer's wss:// URL; the
// certificate is trusted through SSL_CERT_FILE (k6 is a Go program).
func (f *lbFleet) k6(t *testing.T, k6, script string, vars ...string) {
	t.Helper()
	args := []string{"run", "--quiet", "--no-usage-report", "-e", "EDGEHUB_URL=" + f.env["WS_URL"]}
	for _, v := range vars {
		args = append(args, "-e", v)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // a hung k6 only
	defer cancel()
	cmd := exec.CommandContext(ctx, k6, append(args, "../../bench/k6/"+script)...)
	cmd.Env = append(os.Environ(), "SSL_CERT_FILE="+f.env["CERT"])
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("k6 %s through %s: %v\n%s", script, f.env["WS_URL"], err, out)
	}
	t.Logf("k6 %s through %s:\n%s", script, f.env["WS_URL"], out)
}

// drainOne: clients on every node in one room; SIGTERM the node holding
// most of them while messages are published; every client ends with every
// message exactly once, in order.
func (f *lbFleet) drainOne(t *testing.T) {
	room := fmt.Sprintf("lb-drain-%d", time.Now().UnixNano())
	const clients = 12
	cs := make([]*lbClient, clients)
	perNode := map[string]int{}
	for i := range cs {
		cs[i] = f.dial(t)
		cs[i].join(t, room, "", 0)
		perNode[cs[i].node]++
	}
	t.Logf("clients per node: %v", perNode)
	victim := ""
	for n, c := range perNode {
		if victim == "" || c > perNode[victim] {
			victim = n
		}
	}
	if len(perNode) < 2 {
		t.Fatalf("the balancer put every client on %s", victim)
	}
	pid := f.pids[strings.TrimPrefix(victim, "fleet-")] // fleet-node2 -> node2
	if pid == 0 {
		t.Fatalf("no pid for %s in %v", victim, f.pids)
	}
	// Publish through the internal API of a node that stays.
	var api string
	nodes, _ := strconv.Atoi(f.env["NODES"])
	for i := 1; i <= nodes && api == ""; i++ {
		if fmt.Sprintf("fleet-node%d", i) != victim {
			api = f.env[fmt.Sprintf("NODE%d_INTERNAL", i)]
		}
	}
	var (
		mu    sync.Mutex
		acked []int64
	)
	publish := func(k int) {
		body := fmt.Sprintf(`{"room":%q,"data":{"k":%d}}`, room, k)
		resp, err := http.Post(api+"/api/publish", "application/json", strings.NewReader(body))
		if err != nil {
			t.Errorf("publish %d: %v", k, err)
			return
		}
		defer resp.Body.Close()
		var r struct{ Offset int64 }
		if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&r) != nil {
			t.Errorf("publish %d: status %d", k, resp.StatusCode)
			return
		}
		mu.Lock()
		acked = append(acked, r.Offset)
		mu.Unlock()
	}
	stop := make(chan struct{})
	published := make(chan struct{})
	go func() {
		defer close(published)
		for k := 0; ; k++ {
			select {
			case <-stop:
				return
			default:
			}
			publish(k)
			time.Sleep(20 * time.Millisecond)
		}
	}()

	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.follow(t, f, room, victim)
		}()
	}
	time.Sleep(300 * time.Millisecond) // some messages before the drain
	t.Logf("SIGTERM %s (pid %d), %d clients on it", victim, pid, perNode[victim])
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// The drained clients wait retryAfterMs (at most 5.5 s) and come back;
	// publishing goes on meanwhile and for a while after.
	deadline := time.Now().Add(30 * time.Second) // bounds the wait; asserts no duration
	for time.Now().Before(deadline) && !allBack(cs, victim) {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	close(stop)
	<-published
	mu.Lock()
	last := acked[len(acked)-1]
	first := acked[0]
	t.Logf("published offsets %d..%d (%d messages)", first, last, len(acked))
	mu.Unlock()
	for _, c := range cs {
		c.until(last)
	}
	for _, c := range cs {
		c.close()
	}
	wg.Wait()

	if !waitExit(pid, 20*time.Second) {
		t.Errorf("%s (pid %d) still runs after its drain", victim, pid)
	}
	for i, c := range cs {
		c.mu.Lock()
		who := fmt.Sprintf("client %d (%s)", i, c.firstNode)
		if c.firstNode == victim {
			t.Logf("%s: drain %v, rejoined on %s, recovered %v, %d messages replayed, %d in all",
				who, c.drained, c.node, c.recovered, c.replayed, len(c.offsets))
			switch {
			case !c.drained:
				t.Errorf("%s: no drain message", who)
			case c.node == victim:
				t.Errorf("%s: reconnected to the drained node", who)
			case !c.recovered:
				t.Errorf("%s: rejoined on %s without recovered: true", who, c.node)
			}
		}
		if err := c.err; err != nil {
			t.Errorf("%s: %v", who, err)
		}
		// Every acknowledged message, once, in order: the client joined
		// before the first publish and read up to the last.
		want := make([]int64, 0, last-first+1)
		for o := first; o <= last; o++ {
			want = append(want, o)
		}
		got := c.offsets
		for len(got) > 0 && got[0] < first {
			got = got[1:]
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: offsets %v, want %d..%d", who, got, first, last)
		}
		c.mu.Unlock()
	}
}

// lbClient is one WebSocket client of the balancer, following a room
// across a drain.
type lbClient struct {
	conn net.Conn

	mu        sync.Mutex
	node      string // the node it is on now
	firstNode string
	epoch     string
	offsets   []int64 // room messages in arrival order
	drained   bool    // got drain from firstNode
	recovered bool    // the rejoin after the drain said recovered: true
	replayed  int     // messages replayed before that rejoin's joined
	back      bool    // rejoined after a drain
	err       error
	closing   bool
	cond      *sync.Cond
}

type lbMsg struct {
	Type         string          `json:"type"`
	Node         string          `json:"node"`
	Epoch        string          `json:"epoch"`
	Offset       int64           `json:"offset"`
	Recovered    bool            `json:"recovered"`
	RetryAfterMs int64           `json:"retryAfterMs"`
	Room         string          `json:"room"`
	Code         string          `json:"code"`
	Raw          json.RawMessage `json:"-"`
}

func (f *lbFleet) dial(t *testing.T) *lbClient {
	t.Helper()
	var lastErr error
	for attempt := 0; attempt < 20; attempt++ {
		c, err := f.tryDial()
		if err == nil {
			return c
		}
		lastErr = err
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("cannot connect through %s: %v", f.env["WS_URL"], lastErr)
	return nil
}

func (f *lbFleet) tryDial() (*lbClient, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, br, _, err := ws.Dialer{TLSConfig: f.tls}.Dial(ctx, f.env["WS_URL"])
	if err != nil {
		return nil, err
	}
	if br != nil {
		// The welcome came in with the 101: read what the dialer buffered first.
		conn = bufferedConn{conn, io.MultiReader(br, conn)}
	}
	c := &lbClient{conn: conn}
	c.cond = sync.NewCond(&c.mu)
	m, err := c.read()
	if err != nil || m.Type != "welcome" {
		conn.Close()
		return nil, fmt.Errorf("first frame %+v: %v", m, err)
	}
	c.node, c.firstNode = m.Node, m.Node
	return c, nil
}

// bufferedConn reads the bytes the dialer read past the handshake first.
type bufferedConn struct {
	net.Conn
	r io.Reader
}

func (b bufferedConn) Read(p []byte) (int, error) { return b.r.Read(p) }

func (c *lbClient) read() (lbMsg, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	b, err := wsutil.ReadServerText(c.conn)
	if err != nil {
		return lbMsg{}, err
	}
	var m lbMsg
	err = json.Unmarshal(b, &m)
	m.Raw = b
	return m, err
}

func (c *lbClient) send(v string) error { return wsutil.WriteClientText(c.conn, []byte(v)) }

// join joins room (since epoch/offset when epoch is set) and reads up to
// joined, keeping the messages replayed before it.
func (c *lbClient) join(t *testing.T, room, epoch string, offset int64) {
	t.Helper()
	if err := c.joinErr(room, epoch, offset); err != nil {
		t.Fatal(err)
	}
}

func (c *lbClient) joinErr(room, epoch string, offset int64) error {
	req := fmt.Sprintf(`{"type":"join","room":%q}`, room)
	if epoch != "" {
		req = fmt.Sprintf(`{"type":"join","room":%q,"since":{"epoch":%q,"offset":%d}}`, room, epoch, offset)
	}
	if err := c.send(req); err != nil {
		return err
	}
	for {
		m, err := c.read()
		if err != nil {
			return fmt.Errorf("join %s on %s: %w", room, c.node, err)
		}
		switch m.Type {
		case "message":
			c.add(m.Offset)
			if epoch != "" {
				c.mu.Lock()
				c.replayed++
				c.mu.Unlock()
			}
		case "joined":
			c.mu.Lock()
			c.epoch = m.Epoch
			if epoch != "" {
				c.recovered = m.Recovered && m.Epoch == epoch
			}
			c.mu.Unlock()
			return nil
		case "error":
			return fmt.Errorf("join %s on %s: %s", room, c.node, m.Raw)
		}
	}
}

func (c *lbClient) add(offset int64) {
	c.mu.Lock()
	c.offsets = append(c.offsets, offset)
	c.cond.Broadcast()
	c.mu.Unlock()
}

// follow reads the room until close; after a drain it waits retryAfterMs,
// reconnects through the balancer and rejoins since the last offset.
func (c *lbClient) follow(t *testing.T, f *lbFleet, room, victim string) {
	fail := func(err error) {
		c.mu.Lock()
		if !c.closing && c.err == nil {
			c.err = err
		}
		c.cond.Broadcast()
		c.mu.Unlock()
	}
	for {
		m, err := c.read()
		if err != nil {
			c.mu.Lock()
			closing := c.closing
			c.mu.Unlock()
			if !closing {
				fail(fmt.Errorf("read on %s: %w", c.node, err))
			}
			return
		}
		switch m.Type {
		case "message":
			if m.Room == room {
				c.add(m.Offset)
			}
		case "drain":
			c.mu.Lock()
			c.drained = c.node == victim
			last := int64(0)
			if n := len(c.offsets); n > 0 {
				last = c.offsets[n-1]
			}
			epoch := c.epoch
			c.mu.Unlock()
			// The node closes with 1001 after drain: read to the close.
			for {
				if _, err := c.read(); err != nil {
					var ce wsutil.ClosedError
					if !errors.As(err, &ce) || ce.Code != ws.StatusGoingAway {
						fail(fmt.Errorf("after drain: %v, want close 1001", err))
					}
					break
				}
			}
			c.conn.Close()
			time.Sleep(time.Duration(m.RetryAfterMs) * time.Millisecond)
			nc, err := f.tryDial()
			for attempt := 0; err != nil && attempt < 20; attempt++ {
				time.Sleep(200 * time.Millisecond)
				nc, err = f.tryDial()
			}
			if err != nil {
				fail(fmt.Errorf("reconnect after drain: %w", err))
				return
			}
			c.mu.Lock()
			c.conn, c.node = nc.conn, nc.node
			c.mu.Unlock()
			if err := c.joinErr(room, epoch, last); err != nil {
				fail(err)
				return
			}
			c.mu.Lock()
			c.back = true
			c.mu.Unlock()
		}
	}
}

// until waits (bounded) for the client to hold offset o or fail.
func (c *lbClient) until(o int64) {
	deadline := time.Now().Add(15 * time.Second)
	go func() { time.Sleep(time.Until(deadline)); c.mu.Lock(); c.cond.Broadcast(); c.mu.Unlock() }()
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.err == nil && time.Now().Before(deadline) && (len(c.offsets) == 0 || c.offsets[len(c.offsets)-1] < o) {
		c.cond.Wait()
	}
}

func (c *lbClient) close() {
	c.mu.Lock()
	c.closing = true
	conn := c.conn
	c.mu.Unlock()
	conn.Close()
}

func allBack(cs []*lbClient, victim string) bool {
	for _, c := range cs {
		c.mu.Lock()
		ok := c.firstNode != victim || c.back || c.err != nil
		c.mu.Unlock()
		if !ok {
			return false
		}
	}
	return true
}

func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	// A zombie (state Z) has exited; only its parent has not reaped it.
	return err == nil && !strings.Contains(string(b), ") Z ")
}

func waitExit(pid int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for alive(pid) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	return !alive(pid)
}

func readKV(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	kv := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			kv[k] = v
		}
	}
	return kv
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
