package netloop

import (
	"unsafe"

	"github.com/gobwas/ws"
	"golang.org/x/sys/unix"

	"github.com/edgehub/edgehub/frame"
)

// The outbound path never blocks a caller of Send:
//
//	Send ──append──▶ Conn.out ──schedule──▶ flusher ──writev──▶ socket
//	                                            │ EAGAIN
//	                                            ▼
//	                                      write poller (EPOLLOUT, edge-triggered)
//	                                            │ writable
//	                                            └──────────▶ flusher again
//
// The fd is non-blocking (netpoll sets it so), and edgehub writes to it
// itself instead of through netpoll's Writer, whose Flush blocks its caller
// while the kernel buffer is full. Frames queued while a flush is running
// or while the socket is full go out together in the next writev: the more
// load, the more frames per syscall.

// StatusTryAgainLater (1013) closes a slow consumer; gobwas/ws has no
// name for it.
const StatusTryAgainLater ws.StatusCode = 1013

// maxIovecs bounds one writev; Linux's IOV_MAX is 1024.
const maxIovecs = 256

// Send queues a complete frame. The bytes are shared, not copied: the caller
// must never modify them afterwards (one broadcast frame is queued on many
// connections). It returns false when the connection is closing, or when
// the frame would take the queue past Config.MaxQueue, in which case the
// connection is closed with 1013.
func (c *Conn) Send(frame []byte) bool {
	if len(frame) == 0 {
		return true
	}
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return false
	}
	// Bytes a writev is handing to the kernel right now are not waiting:
	// whether a client keeps up must not depend on when its flusher last
	// got a CPU.
	if int(c.queued-c.inflight)+len(frame) > c.srv.cfg.MaxQueue {
		c.mu.Unlock()
		c.srv.metrics.slowConsumerCloses.Inc()
		c.fail(StatusTryAgainLater, "slow consumer")
		return false
	}
	c.out = append(c.out, frame)
	c.queued += int32(len(frame))
	wake := c.markScheduled()
	c.mu.Unlock()
	if wake {
		c.srv.flusherFor(c).add(c)
	}
	return true
}

// markScheduled reports whether the connection must be handed to its
// flusher. Called with c.mu held.
func (c *Conn) markScheduled() bool {
	if c.scheduled || c.waitWritable || c.queued == 0 && !c.closeAfterFlush {
		return false
	}
	c.scheduled = true
	return true
}

// closeWith queues a close frame after what is queued and refuses further
// Sends. Code 0 sends a close frame with no payload.
func (c *Conn) closeWith(code ws.StatusCode, reason string) {
	c.queueClose(frame.NewClose(code, reason), false)
}

// fail is closeWith for a connection that cannot keep up: the frames not
// yet started are dropped so that the close frame goes out now.
func (c *Conn) fail(code ws.StatusCode, reason string) {
	c.queueClose(frame.NewClose(code, reason), true)
}

// closeAfter sends the last bytes of a plain HTTP exchange, then closes.
func (c *Conn) closeAfter(last []byte) {
	c.queueClose(last, false)
}

func (c *Conn) queueClose(last []byte, drop bool) {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return
	}
	c.closing = true
	if drop {
		c.dropUnstarted()
	}
	c.out = append(c.out, last)
	c.queued += int32(len(last))
	c.closeAfterFlush = true
	c.closeAt = c.srv.now() + int64(c.srv.cfg.CloseLinger)
	wake := c.markScheduled()
	c.mu.Unlock()
	if c.state.Load() == stateOpen {
		c.state.Store(stateClosing)
	}
	c.srv.wheel.schedule(c, c.closeAt)
	if wake {
		c.srv.flusherFor(c).add(c)
	}
}

// dropUnstarted removes queued frames, keeping those a writev under way
// is sending and one partly written (the stream would be corrupt without
// its rest). Called with c.mu held.
func (c *Conn) dropUnstarted() {
	keep, covered := c.first, -c.offset
	for keep < len(c.out) && covered < int(c.inflight) {
		covered += len(c.out[keep])
		keep++
	}
	if c.offset > 0 {
		keep = max(keep, c.first+1)
	}
	for i := keep; i < len(c.out); i++ {
		c.queued -= int32(len(c.out[i]))
		c.out[i] = nil
	}
	c.out = c.out[:keep]
}

// flush makes one writev of what is queued (up to maxIovecs frames). It
// runs on the connection's flusher; c.scheduled guarantees one flush at a
// time per connection. more reports that frames remain: the flusher then
// puts the connection at the back of its list, so that a connection fed as
// fast as it drains cannot keep its flusher from the others.
func (c *Conn) flush(iov []unix.Iovec) (more bool) {
	c.wmu.Lock()
	closeNow, more := c.flushLocked(iov)
	c.wmu.Unlock()
	if closeNow {
		c.nc.Close() // after wmu: netpoll may run onClosed synchronously
	}
	return more
}

func (c *Conn) flushLocked(iov []unix.Iovec) (closeNow, more bool) {
	m := c.srv.metrics
	c.mu.Lock()
	if c.fdClosed || c.queued == 0 {
		c.scheduled = false
		done := !c.fdClosed && c.closeAfterFlush && c.queued == 0
		peerClosed := c.peerClosed
		c.mu.Unlock()
		if !done {
			return false, false
		}
		if peerClosed {
			return true, false
		}
		// Half-close: the peer sees our FIN after the close frame and
		// answers; closing outright with unread input would send a RST
		// that can destroy the close frame in flight.
		_ = unix.Shutdown(int(c.fd), unix.SHUT_WR)
		return false, false
	}
	{
		n, bytes := 0, 0
		for i := c.first; i < len(c.out) && n < len(iov); i++ {
			b := c.out[i]
			if i == c.first {
				b = b[c.offset:]
			}
			iov[n].Base = unsafe.SliceData(b)
			iov[n].SetLen(len(b))
			n++
			bytes += len(b)
		}
		c.inflight = int32(bytes)
		c.mu.Unlock()

		written, err := writev(int(c.fd), iov[:n])
		clear(iov[:n]) // do not keep frames alive from the flusher's scratch

		c.mu.Lock()
		c.inflight = 0
		frames := c.consume(written)
		if err == unix.EAGAIN {
			c.waitWritable = true
			c.scheduled = false
			c.stalledAt = c.srv.now()
			c.mu.Unlock()
			m.account(written, frames)
			m.writeStalls.Inc()
			return c.srv.poller.arm(c) != nil, false
		}
		// Stay scheduled: what is left, or the close that follows the
		// last byte, is for the next turn.
		c.mu.Unlock()
		m.account(written, frames)
		if err != nil {
			return true, false // EPIPE, ECONNRESET: the peer is gone
		}
		return false, true
	}
}

// consume drops n written bytes from the head of the queue and returns how
// many frames were completed. Called with c.mu held.
func (c *Conn) consume(n int) (frames int) {
	c.queued -= int32(n)
	for n > 0 {
		rest := len(c.out[c.first]) - c.offset
		if n < rest {
			c.offset += n
			break
		}
		n -= rest
		c.out[c.first] = nil
		c.first++
		c.offset = 0
		frames++
	}
	if c.first == len(c.out) {
		// Empty: reuse the slice, unless a burst grew it; an idle
		// connection should not keep a large backing array.
		if cap(c.out) > 16 {
			c.out = nil
		} else {
			c.out = c.out[:0]
		}
		c.first = 0
	} else if c.first >= 64 && c.first*2 >= len(c.out) {
		// A connection that never drains completely still must not grow
		// its slice forever: move the live tail to the front.
		live := copy(c.out, c.out[c.first:])
		clear(c.out[live:])
		c.out = c.out[:live]
		c.first = 0
	}
	return frames
}

// onWritable is called by the write poller when a full socket drained.
func (c *Conn) onWritable() {
	c.mu.Lock()
	c.waitWritable = false
	wake := c.markScheduled()
	c.mu.Unlock()
	if wake {
		c.srv.flusherFor(c).add(c)
	}
}

// writev writes iov to fd once, retrying on EINTR. A short write is not an
// error; EAGAIN is returned with the bytes written before it (0).
func writev(fd int, iov []unix.Iovec) (int, error) {
	for {
		n, _, errno := unix.Syscall(unix.SYS_WRITEV, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(iov))), uintptr(len(iov)))
		switch errno {
		case 0:
			return int(n), nil
		case unix.EINTR:
			continue
		default:
			return 0, errno
		}
	}
}
