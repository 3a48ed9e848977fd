package netloop

import (
	"sync"
	"time"

	"github.com/gobwas/ws"
)

// wheel is a hashed timer wheel: one goroutine, one tick, and every
// connection in one slot at a time, instead of a timer per connection.
// A connection is visited when its next deadline (handshake timeout, ping,
// idle close, close linger, write stall) comes up, decides what is due,
// and is put back in the slot of its next deadline. Deadlines beyond the
// wheel's span land in its last slot and are simply visited early.
//
// Rescheduling (a close moving the deadline closer) bumps the connection's
// generation; entries of an older generation are dropped when visited, so
// a connection never has two live entries.
type wheel struct {
	srv   *Server
	tick  int64
	mu    sync.Mutex
	slots [][]wheelEntry
	pos   int64 // ticks elapsed since the server's epoch
}

type wheelEntry struct {
	c   *Conn
	gen uint32
}

// wheelTick is a tenth of the heartbeat, within [10ms, 500ms]: idle close
// and pings land within a tenth of their period.
func wheelTick(heartbeat time.Duration) time.Duration {
	return min(max(heartbeat/10, 10*time.Millisecond), 500*time.Millisecond)
}

func newWheel(s *Server, tick time.Duration) *wheel {
	span := max(2*s.cfg.Heartbeat, s.cfg.HandshakeTimeout, s.cfg.WriteTimeout, s.cfg.CloseLinger)
	n := int(span/tick) + 2
	return &wheel{srv: s, tick: int64(tick), slots: make([][]wheelEntry, n)}
}

// schedule (re)places c at deadline at (server clock).
func (w *wheel) schedule(c *Conn, at int64) {
	w.mu.Lock()
	c.wheelGen++
	w.put(wheelEntry{c, c.wheelGen}, at)
	w.mu.Unlock()
}

// put files e in the slot for at. Called with w.mu held.
func (w *wheel) put(e wheelEntry, at int64) {
	t := (at + w.tick - 1) / w.tick
	t = min(max(t, w.pos+1), w.pos+int64(len(w.slots))-1)
	i := t % int64(len(w.slots))
	w.slots[i] = append(w.slots[i], e)
}

func (w *wheel) run(done <-chan struct{}) {
	t := time.NewTicker(time.Duration(w.tick))
	defer t.Stop()
	var due, next []wheelEntry
	var nextAt []int64
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		now := w.srv.now()
		for {
			w.mu.Lock()
			if w.pos*w.tick > now {
				w.mu.Unlock()
				break
			}
			w.pos++
			i := w.pos % int64(len(w.slots))
			due, w.slots[i] = w.slots[i], due[:0]
			// Drop entries superseded by a reschedule.
			live := due[:0]
			for _, e := range due {
				if e.gen == e.c.wheelGen {
					live = append(live, e)
				}
			}
			w.mu.Unlock()

			next, nextAt = next[:0], nextAt[:0]
			for _, e := range live {
				if at, keep := e.c.onTick(now); keep {
					next = append(next, e)
					nextAt = append(nextAt, at)
				}
			}
			clear(due)
			w.mu.Lock()
			for k, e := range next {
				w.put(e, nextAt[k])
			}
			w.mu.Unlock()
			clear(next)
		}
	}
}

// onTick does what is due for c at now and returns its next deadline, or
// keep = false when c needs no more visits.
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
			c.nc.Close()
			return 0, false
		}
		return closeAt, true
	case stalled && now-stalledAt >= int64(cfg.WriteTimeout):
		c.srv.metrics.writeTimeouts.Inc()
		c.nc.Close()
		return 0, false
	}
	if c.state.Load() == stateHTTP {
		// Before the upgrade (or between keep-alive requests) the only
		// deadline is a complete request within the handshake timeout,
		// however slowly its bytes trickle in.
		deadline := c.requestStart.Load() + int64(cfg.HandshakeTimeout)
		if now >= deadline {
			c.nc.Close()
			return 0, false
		}
		return deadline, true
	}
	last := c.lastRead.Load()
	if now-last >= 2*int64(cfg.Heartbeat) {
		c.closeWith(ws.StatusNormalClosure, "idle")
		return c.closeAt, true
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
