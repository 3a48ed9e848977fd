package main

// Stalled clients (issue 7, defect 2): a client that stops reading holds
// about -sndbuf in the kernel plus -max-queue in the node, then is closed
// with 1013 and its socket reset, so the bytes it never took do not stay
// behind in the kernel.

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/edgehub/edgehub/cmd/edgehub/edgehubtest"
)

const (
	stalledClients  = 1000
	stalledPublish  = 6
	stalledSize     = 60_000
	stalledRcvBuf   = 2048
	tcpMemLimitMB   = 200 // host TCP memory growth allowed while they stall
	tcpStateClose   = 7   // TCP_INFO state after a reset
	tcpStateEstab   = 1
	pageSize        = 4096
	stalledMaxQueue = "65536"
)

// tcpMemBytes is the host's TCP memory: /proc/net/sockstat "TCP: ... mem N",
// in pages.
func tcpMemBytes(t testing.TB) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/net/sockstat")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "TCP:" {
			continue
		}
		for i := 1; i+1 < len(f); i++ {
			if f[i] == "mem" {
				pages, err := strconv.ParseInt(f[i+1], 10, 64)
				if err != nil {
					t.Fatal(err)
				}
				return pages * pageSize
			}
		}
	}
	t.Fatal("no TCP mem in /proc/net/sockstat")
	return 0
}

// tcpStateOf reads conn's TCP state without reading from it.
func tcpStateOf(conn net.Conn) (uint8, error) {
	raw, err := conn.(*net.TCPConn).SyscallConn()
	if err != nil {
		return 0, err
	}
	var state uint8
	var serr error
	if err := raw.Control(func(fd uintptr) {
		var info *unix.TCPInfo
		if info, serr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO); serr == nil {
			state = info.State
		}
	}); err != nil {
		return 0, err
	}
	return state, serr
}

// stalledMember connects with a small receive buffer (set before connect,
// so the window it offers is small from the start), joins room, and then
// never reads again.
func stalledMember(t testing.TB, n *edgehubtest.Node, room string) *rawClient {
	d := net.Dialer{Timeout: readTimeout, Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, stalledRcvBuf)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	conn, err := d.Dial("tcp", n.Addr)
	if err != nil {
		t.Errorf("dial: %v", err)
		return nil
	}
	t.Cleanup(func() { conn.Close() })
	r := &rawClient{conn: conn, br: newBufReader(conn)}
	r.upgrade(t)
	r.sendText(t, fmt.Sprintf(`{"type":"join","room":%q}`, room))
	r.expect(t, "joined")
	return r
}

func TestStalledClients(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: 1,000 stalled clients and six broadcasts (-short)")
	}
	// Not parallel: it measures the host's TCP memory, which the sockets
	// of the package's other tests would move.
	before := tcpMemBytes(t)
	n := edgehubtest.Start(t, "-max-queue", stalledMaxQueue, "-max-conns", strconv.Itoa(stalledClients+10))
	room := uniqueRoom("stalled")

	clients := make([]*rawClient, stalledClients)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < stalledClients; i += 8 {
				clients[i] = stalledMember(t, n, room)
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	if active, _ := metricValue(metrics(t, n), "edgehub_connections_active"); active != stalledClients {
		t.Fatalf("edgehub_connections_active = %v, want %d", active, stalledClients)
	}
	// The baseline is taken here, just before the broadcasts: the host is
	// shared, and other processes' sockets move its TCP memory too, so
	// the shorter the measured stretch the less of theirs is in it.
	joined := tcpMemBytes(t)

	// Sample the host's TCP memory while the broadcasts go out.
	stop := make(chan struct{})
	peakCh := make(chan int64, 1)
	go func() {
		peak := joined
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				peakCh <- peak
				return
			case <-tick.C:
				peak = max(peak, tcpMemBytes(t))
			}
		}
	}()
	body, err := json.Marshal(map[string]string{"room": room, "data": strings.Repeat("s", stalledSize)})
	if err != nil {
		t.Fatal(err)
	}
	for i := range stalledPublish {
		if i > 0 {
			time.Sleep(time.Second)
		}
		if code, _, resp := httpDo(t, "POST", n.HTTP+"/api/publish", "", body); code != 200 {
			t.Fatalf("publish %d: %d %s", i, code, resp)
		}
	}

	// The node closes them with 1013 (a frame they will never read) ...
	want := float64(stalledClients) * 0.95
	var closes float64
	for end := time.Now().Add(15 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if closes, _ = metricValue(metrics(t, n), "edgehub_slow_consumer_closes_total"); closes >= want {
			break
		}
	}
	// ... and resets their sockets when the close linger ends: no
	// stalled socket is left established on the client side, and none
	// orphaned on the node's.
	var reset, established int
	for end := time.Now().Add(15 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		reset, established = 0, 0
		for _, c := range clients {
			switch st, err := tcpStateOf(c.conn); {
			case err != nil:
				t.Fatal(err)
			case st == tcpStateClose:
				reset++
			case st == tcpStateEstab:
				established++
			}
		}
		if float64(reset) >= want {
			break
		}
	}
	var active float64
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if active, _ = metricValue(metrics(t, n), "edgehub_connections_active"); active <= stalledClients-want {
			break
		}
	}
	close(stop)
	peak := <-peakCh
	after := tcpMemBytes(t)
	mb := func(b int64) float64 { return float64(b) / (1 << 20) }
	t.Logf("STALLED clients=%d closes=%.0f reset=%d established=%d active_after=%.0f tcp_mem_before=%.1fMB joined=%.1fMB peak=%.1fMB tcp_mem_growth=%.1fMB after=%.1fMB (growth left %.1fMB)",
		stalledClients, closes, reset, established, active, mb(before), mb(joined), mb(peak), mb(peak-joined), mb(after), mb(after-joined))

	if closes < want {
		t.Errorf("edgehub_slow_consumer_closes_total = %.0f of %d stalled clients, want >= 95%%", closes, stalledClients)
	}
	if float64(reset) < want {
		t.Errorf("%d of %d stalled clients' sockets were reset (%d still established), want >= 95%%", reset, stalledClients, established)
	}
	if active > stalledClients-want {
		t.Errorf("edgehub_connections_active = %.0f after the closes", active)
	}
	if growth := peak - joined; growth >= tcpMemLimitMB<<20 {
		t.Errorf("host TCP memory grew by %.1f MB while the clients stalled, want < %d MB", mb(growth), tcpMemLimitMB)
	}
	// Back down: what is left is the clients' own receive queues (the
	// test still holds their sockets), not the node's unsent bytes.
	if left := after - joined; left > (peak-joined)/2 && left > 16<<20 {
		t.Errorf("host TCP memory still %.1f MB above the start after the closes (peak %.1f MB above)", mb(left), mb(peak-joined))
	}
}
