package netloop

import (
	"bytes"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"golang.org/x/sys/unix"

	"github.com/edgehub/edgehub/frame"
)

// TCP states of TCP_INFO (include/net/tcp_states.h).
const (
	tcpEstablished = 1
	tcpClose       = 7 // after a reset
	tcpCloseWait   = 8 // after the peer's FIN
)

// tcpState is the kernel's TCP state of conn's socket, read without
// reading from it.
func tcpState(t testing.TB, conn net.Conn) uint8 {
	t.Helper()
	raw, err := conn.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var state uint8
	var serr error
	if err := raw.Control(func(fd uintptr) {
		var info *unix.TCPInfo
		info, serr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
		if serr == nil {
			state = info.State
		}
	}); err != nil || serr != nil {
		t.Fatal(err, serr)
	}
	return state
}

// stateAfterClose is conn's TCP state once the server closed its end:
// OnClose runs just before netpoll closes the socket, so the FIN or reset
// may still be on its way when waitClosed returns; the wait is bounded
// and asserts no duration.
func stateAfterClose(t testing.TB, conn net.Conn) uint8 {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for tcpState(t, conn) == tcpEstablished && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	return tcpState(t, conn)
}

// stalledDial is a client with a 4 KiB receive buffer that will not read.
func stalledDial(t testing.TB, addr, name string) net.Conn {
	t.Helper()
	conn := rawConn(t, addr)
	if err := conn.(*net.TCPConn).SetReadBuffer(4096); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, handshake, name)
	return conn
}

// openConn waits for the server side of the only connection h has.
func openConn(t testing.TB, h *echoHandler) *Conn {
	t.Helper()
	waitUntil(t, "the connection to open", func() bool { return len(h.conns()) > 0 })
	return h.conns()[0]
}

func waitClosed(t testing.TB, h *echoHandler, c *Conn) {
	t.Helper()
	select {
	case got := <-h.closed:
		if got != c {
			t.Fatalf("closed %v, want %v", got.Session(), c.Session())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the connection was not closed within 10 s")
	}
}

// fill queues size bytes on c in 4 KiB frames.
func fill(c *Conn, size int) {
	payload := bytes.Repeat([]byte("f"), 4096)
	for range size / len(payload) {
		c.Send(frame.New(ws.OpText, payload))
	}
}

func TestSendBufferIsSet(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cfg  int
		want int // Linux doubles the value for its bookkeeping
	}{{0, 2 * DefaultSendBuffer}, {32 << 10, 64 << 10}} {
		h := newEchoHandler()
		_, addr := startServer(t, Config{SendBuffer: tc.cfg}, h)
		dial(t, addr, "b", nil)
		c := openConn(t, h)
		got, err := unix.GetsockoptInt(int(c.fd), unix.SOL_SOCKET, unix.SO_SNDBUF)
		if err != nil || got != tc.want {
			t.Errorf("SendBuffer %d: SO_SNDBUF %d (%v), want %d", tc.cfg, got, err, tc.want)
		}
	}
}

// A closed connection leaves the timer wheel at once: a reconnect storm
// must not keep every dead connection alive until its next deadline.
func TestClosedConnLeavesWheel(t *testing.T) {
	t.Parallel()
	h := newEchoHandler()
	s, addr := startServer(t, Config{}, h)
	const n = 50
	var conns []net.Conn
	for i := range n {
		conn, _ := dial(t, addr, fmt.Sprint(i), nil)
		conns = append(conns, conn)
	}
	waitUntil(t, "the connections to open", func() bool { return len(h.conns()) == n })
	if got := s.wheel.entries(); got != n {
		t.Fatalf("%d wheel entries for %d open connections", got, n)
	}
	for _, conn := range conns {
		conn.Close()
	}
	for range n {
		select {
		case <-h.closed:
		case <-time.After(10 * time.Second):
			t.Fatal("connections not closed")
		}
	}
	// OnClose runs after the connection left the wheel.
	if got := s.wheel.entries(); got != 0 {
		t.Fatalf("%d wheel entries after every connection closed", got)
	}
}

// A peer that stops reading but keeps sending (so it is not idle) is
// dropped after WriteTimeout without write progress, before its queue
// reaches MaxQueue, and reset: the bytes it never took are not left in the
// kernel.
func TestWriteTimeout(t *testing.T) {
	t.Parallel()
	h := newEchoHandler()
	s, addr := startServer(t, Config{Heartbeat: 200 * time.Millisecond, WriteTimeout: 600 * time.Millisecond, MaxQueue: 64 << 20, SendBuffer: 16 << 10}, h)
	conn := stalledDial(t, addr, "stalled")
	c := openConn(t, h)
	var stop atomic.Bool
	defer stop.Store(true)
	go func() { // activity without reading: pongs
		pong := frame.AppendMasked(nil, ws.OpPong, true, nil, [4]byte{1, 2, 3, 4})
		for !stop.Load() {
			if _, err := conn.Write(pong); err != nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	fill(c, 8<<20)
	waitClosed(t, h, c)
	if got := s.metrics.writeTimeouts.Get(); got != 1 {
		t.Errorf("edgehub_write_timeouts_total = %d, want 1", got)
	}
	if got := s.metrics.slowConsumerCloses.Get(); got != 0 {
		t.Errorf("slow consumer closes = %d, want 0 (MaxQueue was not reached)", got)
	}
	if st := stateAfterClose(t, conn); st != tcpClose {
		t.Errorf("client TCP state %d after the write timeout, want %d (reset)", st, tcpClose)
	}
}

// After its close frame the server waits CloseLinger for the peer's answer:
// not less (a peer that answers late is still answered properly), not
// forever.
func TestCloseLinger(t *testing.T) {
	t.Parallel()
	t.Run("waits-for-the-peer", func(t *testing.T) {
		t.Parallel()
		h := newEchoHandler()
		s, addr := startServer(t, Config{CloseLinger: time.Hour}, h)
		conn, r := dial(t, addr, "late", nil)
		c := openConn(t, h)
		c.Close(ws.StatusNormalClosure, "bye")
		expectClose(t, conn, r, ws.StatusNormalClosure)
		select {
		case <-h.closed:
			t.Fatal("closed before the peer answered, with an hour of linger left")
		case <-time.After(300 * time.Millisecond):
		}
		if s.conns.len() != 1 {
			t.Fatalf("%d sockets: want the closing one kept", s.conns.len())
		}
		conn.Write(frame.AppendMasked(nil, ws.OpClose, true, []byte{0x03, 0xe8}, [4]byte{1, 2, 3, 4}))
		waitClosed(t, h, c)
	})
	t.Run("gives-up", func(t *testing.T) {
		t.Parallel()
		h := newEchoHandler()
		s, addr := startServer(t, Config{CloseLinger: 200 * time.Millisecond}, h)
		conn, r := dial(t, addr, "silent", nil)
		c := openConn(t, h)
		c.Close(ws.StatusNormalClosure, "bye")
		expectClose(t, conn, r, ws.StatusNormalClosure)
		waitClosed(t, h, c) // the peer never answers
		if s.conns.len() != 0 {
			t.Fatalf("%d sockets left", s.conns.len())
		}
		// The peer took every byte, so the close is a FIN, not a reset.
		if st := stateAfterClose(t, conn); st != tcpCloseWait {
			t.Errorf("client TCP state %d, want %d (FIN received)", st, tcpCloseWait)
		}
	})
}

// A peer that never reads holds bytes in the server's kernel when the close
// linger ends: the socket is reset so that they are freed, instead of an
// orphan probing a zero window for minutes.
func TestLingerEndResetsUnsentBytes(t *testing.T) {
	t.Parallel()
	h := newEchoHandler()
	_, addr := startServer(t, Config{CloseLinger: 200 * time.Millisecond, MaxQueue: 64 << 20, SendBuffer: 16 << 10}, h)
	conn := stalledDial(t, addr, "stalled")
	c := openConn(t, h)
	fill(c, 1<<20)
	c.Close(StatusTryAgainLater, "bye")
	waitClosed(t, h, c)
	if st := stateAfterClose(t, conn); st != tcpClose {
		t.Fatalf("client TCP state %d after the linger, want %d (reset)", st, tcpClose)
	}
}

// dropUnstarted, while a writev is handing frames to the kernel (inflight),
// keeps exactly those frames and a partly written one.
func TestDropUnstarted(t *testing.T) {
	t.Parallel()
	frames := func(n int) [][]byte {
		out := make([][]byte, n)
		for i := range out {
			out[i] = make([]byte, 100)
		}
		return out
	}
	for _, tc := range []struct {
		name                   string
		n, first, offset, infl int
		keep                   int // len(out) after
	}{
		{"idle", 3, 0, 0, 0, 0},
		{"partly written, no writev", 3, 0, 30, 0, 1},
		{"writev of two", 3, 0, 0, 200, 2},
		{"writev of the rest of one and two more", 4, 0, 30, 270, 3},
		{"writev of all", 3, 0, 0, 300, 3},
		{"after consumed frames", 5, 2, 0, 100, 3},
		{"consumed, partly written, writev of two", 6, 2, 50, 150, 4},
		{"writev capped at maxIovecs", 300, 0, 0, maxIovecs * 100, maxIovecs},
	} {
		c := &Conn{out: frames(tc.n), first: tc.first, offset: tc.offset, inflight: int32(tc.infl)}
		c.queued = int32((tc.n-tc.first)*100 - tc.offset)
		c.dropUnstarted()
		if len(c.out) != tc.keep {
			t.Errorf("%s: %d frames kept, want %d", tc.name, len(c.out), tc.keep)
		}
		if want := (tc.keep-tc.first)*100 - tc.offset; int(c.queued) != max(want, 0) {
			t.Errorf("%s: queued %d, want %d", tc.name, c.queued, want)
		}
		if int(c.queued) < tc.infl {
			t.Errorf("%s: queued %d < %d bytes in flight", tc.name, c.queued, tc.infl)
		}
	}
}
