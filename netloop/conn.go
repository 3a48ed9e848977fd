package netloop

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudwego/netpoll"
	"github.com/gobwas/ws"
	"github.com/valyala/bytebufferpool"

	"github.com/edgehub/edgehub/frame"
)

// Connection states; a connection only moves forward.
const (
	stateHTTP    uint32 = iota // reading HTTP requests, before an upgrade
	stateOpen                  // WebSocket open
	stateClosing               // our close frame is queued or sent; reading only for the peer's close
)

// Conn is one accepted connection. It is a context.Context (one that is
// never done) so that it can be the context netpoll hands to onRequest
// without a wrapper allocation per connection.
type Conn struct {
	srv     *Server
	nc      netpoll.Connection
	session any
	id      uint64

	// Fields are grouped by who touches them and packed: an idle
	// connection's memory is mostly this struct and netpoll's.

	lastRead atomic.Int64 // server clock of the last bytes received
	// since is, on the server clock, when the current HTTP request began
	// (accept, then after each keep-alive answer), and once upgraded, when
	// the WebSocket opened.
	since     atomic.Int64
	state     atomic.Uint32
	fd        int32
	wheelSlot int32 // the timer wheel's, under wheel.mu: slot index + 1, or notInWheel, leftWheel
	wheelIdx  int32 // the timer wheel's, under wheel.mu: index in the slot
	inflight  int32 // under mu: bytes of queued handed to the writev under way
	queued    int32 // under mu: bytes in out not yet written (at most MaxQueue, 1 GiB, plus a close frame)
	lastPing  int64 // the timer wheel's

	// Read side: touched only by onRequest, which netpoll serialises.
	request *bytebufferpool.ByteBuffer // an HTTP request not yet complete
	parser  frame.Parser

	// Write side; see outbound.go. wmu is held across a writev and while
	// the fd is closed, so no write ever reaches a reused descriptor.
	wmu             sync.Mutex
	mu              sync.Mutex
	fdClosed        bool // under wmu
	epolled         bool // under wmu: registered in the write poller's epoll set
	scheduled       bool // this and the rest under mu
	waitWritable    bool
	closing         bool
	closeAfterFlush bool
	peerClosed      bool     // the peer's close frame or FIN arrived: close fully after our last write
	opened          bool     // read side (onRequest, then onClosed): upgraded, so OnOpen ran and OnClose will
	out             [][]byte // queued frames; out[first][offset:] is next on the wire
	first, offset   int
	stalledAt       int64
	closeAt         int64
}

func newConn(s *Server, nc netpoll.Connection) *Conn {
	c := &Conn{srv: s, nc: nc, id: s.conns.nextID.Add(1)}
	if f, ok := nc.(interface{ Fd() int }); ok {
		c.fd = int32(f.Fd())
	}
	now := s.now()
	c.lastRead.Store(now)
	c.since.Store(now)
	c.parser.MaxMessage = int32(s.cfg.MaxMessage)
	return c
}

// Deadline, Done, Err and Value make a Conn a context.Context that is
// never done and holds no values.
func (c *Conn) Deadline() (time.Time, bool) { return time.Time{}, false }
func (c *Conn) Done() <-chan struct{}       { return nil }
func (c *Conn) Err() error                  { return nil }
func (c *Conn) Value(any) any               { return nil }

// ID is the connection's number, unique among its server's connections
// for the life of the server (they are counted from 1).
func (c *Conn) ID() uint64 { return c.id }

// Session is what Handler.Authorize returned for this connection.
func (c *Conn) Session() any { return c.session }

// RemoteAddr is the peer's address.
func (c *Conn) RemoteAddr() net.Addr { return c.nc.RemoteAddr() }

func (c *Conn) isOpen() bool { return c.state.Load() == stateOpen }

// read handles bytes that just arrived; it runs on onRequest.
func (c *Conn) read(data []byte) {
	switch c.state.Load() {
	case stateHTTP:
		c.readHTTP(data)
	case stateOpen, stateClosing:
		c.readFrames(data)
	}
}

func (c *Conn) readFrames(data []byte) {
	err := c.parser.Feed(data, c)
	if err == nil {
		return
	}
	c.parser.Release()
	var ce *frame.CloseError
	switch {
	case errors.As(err, &ce):
		c.closeWith(ce.Code, ce.Reason)
	case errors.Is(err, errPeerClosed):
		c.finishClose()
	default:
		c.closeWith(ws.StatusInternalServerError, "internal error")
	}
}

// finishClose ends a connection whose close handshake is complete: now if
// nothing is left to write, else the flusher closes it after the last byte
// (it sees peerClosed).
func (c *Conn) finishClose() {
	c.mu.Lock()
	drained := c.queued == 0
	c.mu.Unlock()
	if drained {
		c.nc.Close()
	}
}

// errPeerClosed stops parsing once the close handshake is complete.
var errPeerClosed = errors.New("peer closed")

// errBinary fails a connection that sent a binary message: the protocol
// is JSON text only.
var errBinary = &frame.CloseError{Code: ws.StatusUnsupportedData, Reason: "binary frames are not accepted"}

// OnFrame implements frame.Handler.
func (c *Conn) OnFrame(op ws.OpCode, payload []byte) error {
	closing := c.state.Load() == stateClosing
	switch op {
	case ws.OpText:
		if closing {
			return nil // RFC 6455 §5.5.1: data after our close frame is discarded
		}
		c.srv.metrics.messagesIn.Inc()
		c.srv.handler.OnText(c, payload)
	case ws.OpBinary:
		if closing {
			return nil
		}
		return errBinary
	case ws.OpPing:
		if !closing {
			c.Send(frame.New(ws.OpPong, payload))
		}
	case ws.OpClose:
		c.mu.Lock()
		c.peerClosed = true
		c.mu.Unlock()
		if closing {
			return errPeerClosed // the answer to our close: the handshake is done
		}
		code, _ := frame.ParseClose(payload)
		if code == ws.StatusNoStatusRcvd {
			code = 0 // nothing to echo: answer with an empty close frame
		}
		c.closeWith(code, "")
		return errPeerClosed
	}
	return nil
}

// Close starts the close handshake: the close frame is queued after what
// is already queued, further Sends are dropped, and the TCP connection is
// closed when the peer answers or after Config.CloseLinger.
func (c *Conn) Close(code ws.StatusCode, reason string) {
	c.closeWith(code, reason)
}

// onClosed is netpoll's close callback. It runs once, after the last
// onRequest, before netpoll closes the fd (close callbacks run last-added
// first).
func (c *Conn) onClosed(netpoll.Connection) error {
	c.wmu.Lock()
	c.fdClosed = true
	c.wmu.Unlock()
	c.mu.Lock()
	clear(c.out)
	c.out, c.first, c.offset, c.queued = nil, 0, 0, 0
	c.closing = true
	c.mu.Unlock()

	s := c.srv
	s.poller.forget(c)
	s.wheel.remove(c)
	s.conns.remove(c)
	if c.request != nil {
		requestPool.Put(c.request)
		c.request = nil
	}
	c.parser.Release()
	c.state.Store(stateClosing)
	if c.opened {
		s.conns.open.Add(-1)
		s.metrics.connectionDuration.Update(float64(s.now()-c.since.Load()) / 1e9)
		s.handler.OnClose(c)
	}
	return nil
}
