package netloop

import (
	"sync"
	"time"

	"github.com/gobwas/ws"
)

// wheel is a hashed timer wheel: one goroutine, one tick, and every
// connection in at most one slot at a time, instead of a timer per
// connection. A connection is visited when its next deadline (handshake
// timeout, ping, idle close, close linger, write stall) comes up, decides
// what is due, and is put back in the slot of its next deadline. Deadlines
// beyond the wheel's span land in its last slot and are simply visited
// early.
//
// A slot is a slice of connections, and each connection knows its place in
// it (Conn.wheelSlot, Conn.wheelIdx), so that rescheduling and removal are
// O(1): a closed connection leaves the wheel at once and nothing here keeps
// it (and its netpoll connection) alive until its next deadline.
type wheel struct {
	tick  int64
	mu    sync.Mutex
	slots [][]*Conn
	pos   int64 // the last tick visited, counted from the server's epoch

	// Scratch of advance, used only by the goroutine that runs it.
	due, next []*Conn
	nextAt    []int64
}

// Conn.wheelSlot values besides slot index + 1.
const (
	notInWheel = 0  // being visited, or never scheduled
	leftWheel  = -1 // closed: never scheduled again
)

// wheelTick is a tenth of the heartbeat, within [10ms, 500ms]: idle close
// and pings land within a tenth of their period.
func wheelTick(heartbeat time.Duration) time.Duration {
	return min(max(heartbeat/10, 10*time.Millisecond), 500*time.Millisecond)
}

// newWheel makes a wheel whose slots cover span at tick resolution.
func newWheel(span, tick time.Duration) *wheel {
	n := int(span/tick) + 2
	return &wheel{tick: int64(tick), slots: make([][]*Conn, n)}
}

// schedule (re)places c at deadline at (server clock).
func (w *wheel) schedule(c *Conn, at int64) {
	w.mu.Lock()
	if c.wheelSlot != leftWheel {
		w.unlink(c)
		w.put(c, at)
	}
	w.mu.Unlock()
}

// remove takes c out of the wheel for good; it runs when c's fd closes.
func (w *wheel) remove(c *Conn) {
	w.mu.Lock()
	w.unlink(c)
	c.wheelSlot = leftWheel
	w.mu.Unlock()
}

// unlink takes c out of its slot, if it is in one, moving the slot's last
// connection into its place. Called with w.mu held.
func (w *wheel) unlink(c *Conn) {
	if c.wheelSlot <= notInWheel {
		return
	}
	i := c.wheelSlot - 1
	slot := w.slots[i]
	last := len(slot) - 1
	moved := slot[last]
	slot[c.wheelIdx] = moved
	moved.wheelIdx = c.wheelIdx
	slot[last] = nil
	w.slots[i] = slot[:last]
	c.wheelSlot = notInWheel
}

// put files c, in no slot, in the slot for at: the first tick at or after
// it, so that a visit never comes before the deadline. Called with w.mu
// held.
func (w *wheel) put(c *Conn, at int64) {
	t := (at + w.tick - 1) / w.tick
	t = min(max(t, w.pos+1), w.pos+int64(len(w.slots))-1)
	i := t % int64(len(w.slots))
	c.wheelSlot, c.wheelIdx = int32(i)+1, int32(len(w.slots[i]))
	w.slots[i] = append(w.slots[i], c)
}

// visitFunc does what is due for c at now and returns its next deadline,
// or keep = false when c needs no more visits.
type visitFunc func(c *Conn, now int64) (at int64, keep bool)

func (w *wheel) run(done <-chan struct{}, clock func() int64, visit visitFunc) {
	t := time.NewTicker(time.Duration(w.tick))
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		w.advance(clock(), visit)
	}
}

// advance visits every slot whose tick has come by now, in order. A slot
// is visited when its whole tick has passed (tick * t <= now), so every
// connection in it has reached its deadline.
func (w *wheel) advance(now int64, visit visitFunc) {
	for {
		w.mu.Lock()
		if (w.pos+1)*w.tick > now {
			w.mu.Unlock()
			return
		}
		w.pos++
		i := w.pos % int64(len(w.slots))
		w.due, w.slots[i] = w.slots[i], w.due[:0]
		for _, c := range w.due {
			c.wheelSlot = notInWheel
		}
		w.mu.Unlock()

		w.next, w.nextAt = w.next[:0], w.nextAt[:0]
		for _, c := range w.due {
			if at, keep := visit(c, now); keep {
				w.next = append(w.next, c)
				w.nextAt = append(w.nextAt, at)
			}
		}
		clear(w.due)
		w.mu.Lock()
		for k, c := range w.next {
			// A connection rescheduled (or closed) while it was visited
			// keeps that newer placement.
			if c.wheelSlot == notInWheel {
				w.put(c, w.nextAt[k])
			}
		}
		w.mu.Unlock()
		clear(w.next)
	}
}

// entries counts the connections in the wheel.
func (w *wheel) entries() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, s := range w.slots {
		n += len(s)
	}
	return n
}

// onTick is the server's visitFunc.
func (c *Conn) onTick(now int64) (at int64, keep bool) {
	cfg := &c.srv.cfg
	c.mu.Lock()
	fdClosed, closing, closeAt := c.fdClosed, c.closing, c.closeAt
	stalled, stalledAt := c.waitWritable, c.stalledAt
	c.mu.Unlock()
	switch {
	case fdClosed:
		return 0, false
	case closing:
		if now >= closeAt {
			c.abort()
			return 0, false
		}
		return closeAt, true
	case stalled && now-stalledAt >= int64(cfg.WriteTimeout):
		c.srv.metrics.writeTimeouts.Inc()
		c.abort()
		return 0, false
	}
	if c.state.Load() == stateHTTP {
		// Before the upgrade (or between keep-alive requests) the only
		// deadline is a complete request within the handshake timeout,
		// however slowly its bytes trickle in.
		deadline := c.since.Load() + int64(cfg.HandshakeTimeout)
		if now >= deadline {
			c.nc.Close()
			return 0, false
		}
		return deadline, true
	}
	last := c.lastRead.Load()
	if now-last >= 2*int64(cfg.Heartbeat) {
		c.closeWith(ws.StatusNormalClosure, "idle")
		c.mu.Lock()
		at = c.closeAt
		c.mu.Unlock()
		return at, true
	}
	if now-c.lastPing >= int64(cfg.Heartbeat) {
		c.Send(ws.CompiledPing)
		c.lastPing = now
	}
	at = min(c.lastPing+int64(cfg.Heartbeat), last+2*int64(cfg.Heartbeat))
	if stalled {
		at = min(at, stalledAt+int64(cfg.WriteTimeout))
	}
	return at, true
}
