package loadgen

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
)

// client is one WebSocket connection of the loader. Its read loop runs on
// its own goroutine; writes may come from any goroutine and are serialised
// by wmu. Fields below the line are touched only by the read loop.
type client struct {
	id   int
	room int // index of the joined room, -1 for none
	conn net.Conn
	br   *bufio.Reader
	wmu  sync.Mutex
	done chan struct{} // closed when the read loop returns

	joinSent int64       // unix nanos the join was written (atomic)
	joined   atomic.Bool // the join was answered
	closed   atomic.Bool // the loader closed it, so the read loop's end is expected

	// Read-loop state.
	hdr        [ws.MaxHeaderSize - 2]byte
	lastOffset int64
	answers    chan struct{} // publish scenario: an ack or error arrived
	ai         *aiJob        // in-flight ai query, ai scenario only
}

var errServerClose = errors.New("server sent close")

// readLoop reads frames until the connection fails or closes, answering
// pings and handing every text frame to onText. Control frames are answered
// on this goroutine because the server drops a peer that stays silent for
// two heartbeats.
func (c *client) readLoop(onText func(c *client, msg []byte), onExit func(c *client, err error)) {
	defer close(c.done)
	var scratch []byte // for frames larger than the read buffer; rare
	for {
		h, err := ws.ReadHeaderBuffer(c.br, c.hdr[:])
		if err != nil {
			onExit(c, err)
			return
		}
		if h.Length > int64(maxFrame) {
			onExit(c, fmt.Errorf("frame of %d bytes", h.Length))
			return
		}
		n := int(h.Length)
		var p []byte
		if n <= c.br.Size() {
			// Zero-copy: the payload stays in the bufio buffer until Discard.
			p, err = c.br.Peek(n)
		} else {
			if cap(scratch) < n {
				scratch = make([]byte, n)
			}
			p = scratch[:n]
			_, err = io.ReadFull(c.br, p)
		}
		if err != nil {
			onExit(c, err)
			return
		}
		if h.Masked {
			ws.Cipher(p, h.Mask, 0)
		}
		switch h.OpCode {
		case ws.OpText, ws.OpContinuation:
			// The server sends each message as one frame; a fragmented one
			// is delivered piecewise and would not parse, which shows up as
			// lost messages rather than being hidden.
			onText(c, p)
		case ws.OpPing:
			err = c.writeFrame(ws.NewPongFrame(append([]byte(nil), p...)))
		case ws.OpClose:
			_ = c.writeFrame(ws.NewCloseFrame(append([]byte(nil), p...)))
			err = errServerClose
		}
		if n <= c.br.Size() {
			_, _ = c.br.Discard(n)
		}
		if err != nil {
			onExit(c, err)
			return
		}
	}
}

// answered tells a publish loop waiting on c that its publish was
// answered; without one (every scenario but publish) it does nothing.
func (c *client) answered() {
	if c.answers != nil {
		select {
		case c.answers <- struct{}{}:
		default:
		}
	}
}

// maxFrame bounds what the loader accepts; the node's default -max-message
// is 64 KiB and its messages carry some framing around the data.
const maxFrame = 1 << 20

// writeText sends one masked text frame (client frames must be masked).
func (c *client) writeText(p []byte) error {
	return c.writeFrame(ws.NewTextFrame(p))
}

// writeFrame masks f in place (its payload must be the caller's) and writes
// header and payload with one syscall.
func (c *client) writeFrame(f ws.Frame) error {
	b, err := ws.CompileFrame(ws.MaskFrameInPlace(f))
	if err != nil {
		return err
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	_, err = c.conn.Write(b)
	return err
}

const writeTimeout = 5 * time.Second

// close sends a normal close frame and closes the socket without waiting
// for the server's answer: the loader is leaving, and waiting on thousands
// of close handshakes would only slow the run's end.
func (c *client) close() {
	c.closed.Store(true)
	_ = c.writeFrame(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, "")))
	_ = c.conn.Close()
}
