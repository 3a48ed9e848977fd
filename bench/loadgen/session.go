package loadgen

import (
	"bufio"
	"context"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gobwas/ws"
	"golang.org/x/sys/unix"
)

// session is the state of one run shared by its scenario, its connections'
// read loops and the progress display.
type session struct {
	cfg    Config
	urls   []string      // node URLs dialed in turn (Config.Spread)
	dials  atomic.Uint64 // dials so far, picks the next URL
	dialer ws.Dialer
	probe  *serverProbe
	cores  int // CPUs the loader may use
	start  time.Time

	upgrade, join, latency *latencyHist

	connected, failed, joined, closedEarly atomic.Int64
	received, duplicates, acks             atomic.Int64
	serverErrors                           atomic.Int64
	lastDelivery                           atomic.Int64 // unix nanos
	nextID                                 atomic.Int64

	mu          sync.Mutex
	clients     []*client
	errs        map[string]int64
	limits      []string // why the loader, not the server, was the limit
	loaderShare float64  // highest CPU share of a measured phase
	schedLagMs  float64  // highest p99 wait of a goroutine for the loader's CPU

	readers sync.WaitGroup // running read loops
	ai      *aiState       // ai scenario only
	phase   atomic.Value   // string, for the progress line
}

func newSession(cfg Config) *session {
	s := &session{
		cfg:     cfg,
		urls:    cfg.urls(),
		probe:   newServerProbe(cfg),
		cores:   selfCores(),
		start:   time.Now(),
		upgrade: newLatencyHist(),
		join:    newLatencyHist(),
		latency: newLatencyHist(),
		errs:    map[string]int64{},
	}
	s.phase.Store("start")
	var next atomic.Uint64
	s.dialer = ws.Dialer{
		Timeout:        cfg.ConnectTimeout,
		ReadBufferSize: cfg.ReadBuffer,
		NetDial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			d := net.Dialer{Control: bindAddressNoPort}
			if n := len(cfg.Sources); n > 0 {
				d.LocalAddr = &net.TCPAddr{IP: cfg.Sources[next.Add(1)%uint64(n)]}
			}
			return d.DialContext(ctx, network, addr)
		},
	}
	return s
}

// bindAddressNoPort defers the choice of the source port from bind to
// connect, so a port is only unique per (source, destination) pair, not per
// source; without it a bound dialer runs out of ports at ~28K per source.
func bindAddressNoPort(_, _ string, rc syscall.RawConn) error {
	var serr error
	err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
	})
	if err != nil {
		return err
	}
	return serr
}

// dial opens one connection and starts its read loop.
// ended reports whether ctx is done or past its deadline. The dialer sets
// the socket's deadline to ctx's, and that can fire a moment before ctx
// itself reports done.
func ended(ctx context.Context) bool {
	d, ok := ctx.Deadline()
	return ctx.Err() != nil || ok && !time.Now().Before(d)
}

func (s *session) dial(ctx context.Context) (*client, error) {
	t := time.Now()
	url := s.urls[(s.dials.Add(1)-1)%uint64(len(s.urls))]
	conn, br, _, err := s.dialer.Dial(ctx, url)
	if err != nil {
		if !ended(ctx) { // a dial cut short by the run's end is no failure
			s.failed.Add(1)
			s.count(errorKind(err))
		}
		return nil, err
	}
	id := int(s.nextID.Add(1))
	s.upgrade.record(id, time.Since(t))
	if br == nil { // the server's first frame was not read with the handshake
		br = bufio.NewReaderSize(conn, s.cfg.ReadBuffer)
	}
	c := &client{id: id, room: -1, conn: conn, br: br, done: make(chan struct{})}
	s.connected.Add(1)
	s.readers.Add(1)
	go func() {
		defer s.readers.Done()
		c.readLoop(s.onText, s.onExit)
	}()
	return c, nil
}

// connect opens n connections, ConnectConcurrency at a time, keeps them in
// s.clients and calls setup on each. It returns the time from the first
// dial to the last upgrade.
func (s *session) connect(ctx context.Context, n int, setup func(c *client)) time.Duration {
	t0 := time.Now()
	var todo atomic.Int64
	todo.Store(int64(n))
	var wg sync.WaitGroup
	for range min(s.cfg.ConnectConcurrency, n) {
		wg.Go(func() {
			for todo.Add(-1) >= 0 && ctx.Err() == nil {
				c, err := s.dial(ctx)
				if err != nil {
					continue
				}
				s.mu.Lock()
				s.clients = append(s.clients, c)
				s.mu.Unlock()
				if setup != nil {
					setup(c)
				}
			}
		})
	}
	wg.Wait()
	return time.Since(t0)
}

// joinRoom sends a join for room id%Rooms.
func (s *session) joinRoom(c *client) {
	c.room = c.id % s.cfg.Rooms
	atomic.StoreInt64(&c.joinSent, time.Now().UnixNano())
	msg := append([]byte(`{"type":"join","room":"`), roomName(c.room)...)
	if err := c.writeText(append(msg, `"}`...)); err != nil {
		s.count(errorKind(err))
	}
}

func roomName(i int) string { return "r" + strconv.Itoa(i) }

// waitJoined waits until every open connection has been answered its join,
// or the connect timeout passes; it returns whether all were.
func (s *session) waitJoined(ctx context.Context) bool {
	return s.waitFor(ctx, s.cfg.ConnectTimeout, func() bool {
		return s.joined.Load() >= s.connected.Load()-s.closedEarly.Load()
	})
}

// waitFor polls cond until it holds, the timeout passes or ctx ends.
func (s *session) waitFor(ctx context.Context, timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// onText handles one text frame from the server; it runs on c's read loop.
func (s *session) onText(c *client, msg []byte) {
	typ := jsonString(msg, keyType)
	switch string(typ) {
	case "message":
		s.onMessage(c, msg)
	case "joined":
		c.joined.Store(true)
		s.joined.Add(1)
		s.join.record(c.id, time.Duration(time.Now().UnixNano()-atomic.LoadInt64(&c.joinSent)))
	case "ack":
		s.acks.Add(1)
		c.answered()
	case "queued", "ai-chunk", "ai-error":
		if s.ai != nil {
			s.ai.onFrame(s, c, typ, msg)
		}
	case "error":
		s.serverErrors.Add(1)
		s.count("server error " + string(jsonString(msg, keyCode)))
		c.answered()
		if s.ai != nil && c.ai != nil {
			s.ai.onFrame(s, c, typ, msg)
		}
	case "welcome", "pong", "left":
	default:
		s.count("server sent " + strconv.Quote(string(typ)))
	}
}

// onMessage counts one delivery, its latency from the stamp in its data,
// and a duplicate when its offset is not past the last one seen.
func (s *session) onMessage(c *client, msg []byte) {
	now := time.Now().UnixNano()
	s.received.Add(1)
	s.lastDelivery.Store(now)
	if ts, ok := jsonInt(msg, keyTS); ok {
		s.latency.record(c.id, time.Duration(now-ts))
	}
	if off, ok := jsonInt(msg, keyOffset); ok {
		if off <= c.lastOffset {
			s.duplicates.Add(1)
		} else {
			c.lastOffset = off
		}
	}
}

// onExit runs when c's read loop ends.
func (s *session) onExit(c *client, err error) {
	if c.closed.Load() {
		return // the loader closed it
	}
	s.closedEarly.Add(1)
	s.count("closed by server: " + errorKind(err))
}

// count adds one occurrence of an error kind.
func (s *session) count(kind string) {
	s.mu.Lock()
	s.errs[kind]++
	s.mu.Unlock()
}

// closeAll closes every connection in s.clients and waits (boundedly) for
// the read loops to end.
func (s *session) closeAll() {
	s.mu.Lock()
	clients := s.clients
	s.clients = nil
	s.mu.Unlock()
	for _, c := range clients {
		c.close()
	}
	done := make(chan struct{})
	go func() { s.readers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		s.count("read loops still running 10s after close")
	}
}

// clientsByRoom counts, per room, the connections whose join was answered.
func (s *session) clientsByRoom() []int64 {
	members := make([]int64, s.cfg.Rooms)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.clients {
		if c.joined.Load() {
			members[c.room]++
		}
	}
	return members
}
