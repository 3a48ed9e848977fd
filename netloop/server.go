package netloop

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/cloudwego/netpoll"

	"github.com/edgehub/edgehub/frame"
)

// Defaults for a zero Config.
const (
	DefaultPath             = "/ws"
	DefaultMaxQueue         = 1 << 20
	DefaultHeartbeat        = 25 * time.Second
	DefaultHandshakeTimeout = 5 * time.Second
	DefaultMaxRequestHeader = 8 << 10
	DefaultCloseLinger      = 2 * time.Second
	DefaultSendBuffer       = 64 << 10
)

// DefaultSendBuffer is the SO_SNDBUF of an accepted socket (see
// sockopt.go). One connection's throughput is at most its send buffer per
// round trip: 64 KiB over a 100 ms RTT is 640 KB/s, and over 20 ms 3.2
// MB/s, far above what a chat or a streamed answer needs (and 1 MiB of
// recovery replay still takes under two seconds at 100 ms). Linux doubles
// the value for bookkeeping, so a client that stops reading holds ~128 KiB
// of kernel memory, not the 4 MiB autotuning would give it: 1,000 stalled
// clients cost ~128 MB instead of ~4 GB, and they reach Config.MaxQueue,
// and are closed, after ~64 KiB instead of ~4 MiB.

// readBufferSize is the first read buffer of every connection. netpoll
// allocates it at accept and never frees a connection's last buffer node,
// so it is most of what an idle connection costs: 256 bytes instead of
// netpoll's 8 KiB measured ~3.9 KB per idle connection instead of ~11.9 KB.
// A connection that fills it gets a buffer twice as large on the next read.
const readBufferSize = 256

var configureNetpoll sync.Once

// tuneNetpoll applies the buffer sizes before the first connection is
// accepted (netpoll reads them when it creates a connection).
func tuneNetpoll() {
	configureNetpoll.Do(func() {
		_ = netpoll.Configure(netpoll.Config{BufferSize: readBufferSize})
		// The minimum size of a buffer node; 0 lets a node be as small as
		// what it holds. edgehub never uses netpoll's output buffer (see
		// outbound.go), so this only shapes input nodes.
		netpoll.LinkBufferCap = 0
	})
}

// Config tunes a Server. The zero value means the defaults.
type Config struct {
	// Path is the URL path WebSocket upgrades are served on.
	Path string
	// MaxMessage is the largest reassembled client message payload;
	// one byte more closes the connection with 1009.
	MaxMessage int
	// MaxQueue is how many bytes may wait in one connection's outbound
	// queue; a Send past it closes the connection with 1013.
	MaxQueue int
	// Heartbeat is the ping interval; a connection silent for two of them
	// is closed with 1000 "idle".
	Heartbeat time.Duration
	// HandshakeTimeout bounds the time to receive a complete HTTP request
	// (the upgrade, or a keep-alive request after the previous answer).
	HandshakeTimeout time.Duration
	// MaxRequestHeader bounds an HTTP request line plus headers.
	MaxRequestHeader int
	// MaxRequestBody bounds a plain HTTP request body; larger requests are
	// answered 413 without being read. Defaults to MaxMessage plus 1 KiB
	// of envelope.
	MaxRequestBody int
	// WriteTimeout is how long a connection may make no write progress with
	// data queued before it is dropped. Defaults to two heartbeats.
	WriteTimeout time.Duration
	// CloseLinger is how long to wait for the peer's close frame or FIN
	// after our close frame went out.
	CloseLinger time.Duration
	// SendBuffer is the SO_SNDBUF of every accepted socket, in bytes
	// (Linux caps it at net.core.wmem_max); defaults to DefaultSendBuffer.
	// Negative leaves the kernel's autotuning, which lets one stalled
	// client hold up to net.ipv4.tcp_wmem's maximum.
	SendBuffer int
	// Flushers is the number of writer goroutines; defaults to GOMAXPROCS.
	Flushers int
	// Metrics receives the server's metrics; nil registers none.
	Metrics *metrics.Set
}

func (c Config) withDefaults() Config {
	if c.Path == "" {
		c.Path = DefaultPath
	}
	if c.MaxMessage <= 0 {
		c.MaxMessage = frame.DefaultMaxMessage
	}
	// A connection's parser counts it in an int32.
	c.MaxMessage = min(c.MaxMessage, 1<<30)
	if c.MaxQueue <= 0 {
		c.MaxQueue = DefaultMaxQueue
	}
	// Bytes queued and in flight are counted in int32s (see Conn.queued).
	c.MaxQueue = min(c.MaxQueue, 1<<30)
	if c.Heartbeat <= 0 {
		c.Heartbeat = DefaultHeartbeat
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if c.MaxRequestHeader <= 0 {
		c.MaxRequestHeader = DefaultMaxRequestHeader
	}
	if c.MaxRequestBody <= 0 {
		c.MaxRequestBody = c.MaxMessage + 1024
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 2 * c.Heartbeat
	}
	if c.CloseLinger <= 0 {
		c.CloseLinger = DefaultCloseLinger
	}
	if c.SendBuffer == 0 {
		c.SendBuffer = DefaultSendBuffer
	}
	if c.Flushers <= 0 {
		c.Flushers = runtime.GOMAXPROCS(0)
	}
	return c
}

// Handler is what a Server serves. See the package comment for which
// goroutine calls what.
type Handler interface {
	// ServeHTTP answers a plain HTTP request: any path but Config.Path.
	// The request body is fully buffered.
	http.Handler
	// Authorize decides a WebSocket handshake whose headers are valid.
	// It returns the connection's session (kept as Conn.Session) or a
	// rejection, answered with its HTTP status.
	Authorize(req *Upgrade) (session any, reject *Rejection)
	// OnOpen runs once the 101 answer is queued; frames sent here follow it.
	OnOpen(c *Conn)
	// OnText receives one complete, valid UTF-8 text message. msg is only
	// valid during the call.
	OnText(c *Conn, msg []byte)
	// OnClose runs once for every opened connection, after its last OnText.
	OnClose(c *Conn)
}

// Rejection is a refused WebSocket handshake.
type Rejection struct {
	Status int
	Reason string
}

// Server is a WebSocket and HTTP server on one listener.
type Server struct {
	cfg     Config
	handler Handler
	loop    netpoll.EventLoop
	epoch   time.Time // origin of the monotonic clock Conn timestamps use

	flushers []*flusher
	poller   *writePoller
	wheel    *wheel
	conns    registry
	metrics  *serverMetrics

	mu     sync.Mutex
	ln     net.Listener
	closed chan struct{}
}

// New builds a Server. Call Serve to run it.
func New(cfg Config, h Handler) (*Server, error) {
	cfg = cfg.withDefaults()
	tuneNetpoll()
	s := &Server{cfg: cfg, handler: h, epoch: time.Now(), closed: make(chan struct{})}
	s.conns.init()
	s.metrics = newServerMetrics(cfg.Metrics, s)
	var err error
	if s.poller, err = newWritePoller(); err != nil {
		return nil, err
	}
	s.flushers = make([]*flusher, cfg.Flushers)
	for i := range s.flushers {
		s.flushers[i] = newFlusher()
	}
	span := max(2*cfg.Heartbeat, cfg.HandshakeTimeout, cfg.WriteTimeout, cfg.CloseLinger)
	s.wheel = newWheel(span, wheelTick(cfg.Heartbeat))
	s.loop, err = netpoll.NewEventLoop(s.onRequest,
		netpoll.WithOnPrepare(s.onPrepare),
	)
	if err != nil {
		return nil, fmt.Errorf("cannot create event loop: %w", err)
	}
	return s, nil
}

// Serve runs the event loop on ln until Shutdown. It returns nil after a
// Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	s.ln = ln
	s.mu.Unlock()
	for _, f := range s.flushers {
		go f.run()
	}
	go s.poller.run()
	go s.wheel.run(s.closed, s.now, (*Conn).onTick)
	err := s.loop.Serve(ln)
	select {
	case <-s.closed:
		return nil
	default:
		return err
	}
}

// Addr is the listening address, once Serve has started.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Shutdown stops accepting, closes every connection at once and stops the
// server's goroutines. Close WebSocket connections gracefully (Conn.Close)
// before calling it.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	select {
	case <-s.closed:
		s.mu.Unlock()
		return nil
	default:
		close(s.closed)
	}
	s.mu.Unlock()
	err := s.loop.Shutdown(ctx)
	for _, f := range s.flushers {
		f.stop()
	}
	s.poller.close()
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("connections still open at shutdown: %w", err)
	}
	return err
}

// Each calls fn for every open WebSocket connection. fn must not block.
func (s *Server) Each(fn func(*Conn)) {
	s.conns.each(func(c *Conn) {
		if c.isOpen() {
			fn(c)
		}
	})
}

// OpenConns is the number of open WebSocket connections.
func (s *Server) OpenConns() int { return int(s.conns.open.Load()) }

// now is the server's monotonic clock in nanoseconds.
func (s *Server) now() int64 { return int64(time.Since(s.epoch)) }

func (s *Server) flusherFor(c *Conn) *flusher {
	return s.flushers[c.id%uint64(len(s.flushers))]
}

// onPrepare creates the connection's state before netpoll polls its fd.
// The *Conn is the context netpoll hands back to onRequest.
func (s *Server) onPrepare(nc netpoll.Connection) context.Context {
	c := newConn(s, nc)
	// Setting SO_SNDBUF also turns the kernel's autotuning off for the
	// socket. It fails only on a descriptor that is not a socket.
	_ = setSendBuffer(int(c.fd), s.cfg.SendBuffer)
	_ = nc.AddCloseCallback(c.onClosed)
	s.conns.add(c)
	s.wheel.schedule(c, c.since.Load()+int64(s.cfg.HandshakeTimeout))
	s.metrics.socketsTotal.Inc()
	return c
}

// onRequest consumes every byte netpoll has buffered for the connection:
// netpoll calls it again and again while bytes remain.
func (s *Server) onRequest(ctx context.Context, nc netpoll.Connection) error {
	c := ctx.(*Conn)
	r := nc.Reader()
	n := r.Len()
	if n == 0 {
		return nil
	}
	data, err := r.Next(n)
	if err != nil {
		return nc.Close()
	}
	s.metrics.bytesIn.Add(n)
	c.lastRead.Store(s.now())
	c.read(data)
	return r.Release()
}
