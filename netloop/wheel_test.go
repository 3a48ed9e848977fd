package netloop

import (
	"math/rand/v2"
	"testing"
	"time"
)

// A test wheel: 10 ns ticks over a 1000 ns span, driven by advance with a
// virtual clock.
const testTick = 10

func testWheel() *wheel { return newWheel(1000, testTick) }

// checkLinks fails unless every connection in the wheel is where it says.
func checkLinks(t *testing.T, w *wheel) {
	t.Helper()
	for i, slot := range w.slots {
		for j, c := range slot {
			if c.wheelSlot != int32(i)+1 || c.wheelIdx != int32(j) {
				t.Fatalf("slot %d[%d] holds a conn that says slot %d[%d]", i, j, c.wheelSlot-1, c.wheelIdx)
			}
		}
	}
}

func TestWheelVisitsNoDeadlineEarly(t *testing.T) {
	t.Parallel()
	w := testWheel()
	deadline := map[*Conn]int64{}
	for range 500 {
		c := &Conn{}
		deadline[c] = rand.Int64N(900) + 1
		w.schedule(c, deadline[c])
	}
	checkLinks(t, w)
	early, late, done := 0, 0, map[*Conn]int{}
	const step = 3
	for now := int64(0); now <= 1200; now += step {
		w.advance(now, func(c *Conn, now int64) (int64, bool) {
			d := deadline[c]
			if now < d {
				// What onTick does when nothing is due yet: come back at
				// the deadline. Every such visit is wasted work.
				early++
				return d, true
			}
			if now >= d+testTick+step {
				late++
			}
			done[c]++
			return 0, false
		})
	}
	if early > 0 || late > 0 {
		t.Fatalf("%d visits before their deadline, %d more than a tick after it", early, late)
	}
	for c := range deadline {
		if done[c] != 1 {
			t.Fatalf("a connection due at %d was visited %d times", deadline[c], done[c])
		}
	}
	if n := w.entries(); n != 0 {
		t.Fatalf("%d entries left", n)
	}
}

// A periodic deadline (a ping every heartbeat) costs one visit per period.
func TestWheelPeriodicVisits(t *testing.T) {
	t.Parallel()
	w := testWheel()
	const period, until = 100, 10000
	c := &Conn{}
	next := int64(period)
	w.schedule(c, next)
	visits := 0
	for now := int64(0); now <= until; now++ {
		w.advance(now, func(c *Conn, now int64) (int64, bool) {
			visits++
			if now >= next {
				next += period
			}
			return next, true
		})
	}
	if want := until / period; visits != want {
		t.Fatalf("%d visits in %d periods", visits, want)
	}
}

func TestWheelRemove(t *testing.T) {
	t.Parallel()
	w := testWheel()
	var conns []*Conn
	for i := range 100 {
		c := &Conn{}
		conns = append(conns, c)
		w.schedule(c, int64(i*7%900))
	}
	removed := map[*Conn]bool{}
	for _, c := range conns[:50] {
		w.remove(c)
		removed[c] = true
	}
	checkLinks(t, w)
	if n := w.entries(); n != 50 {
		t.Fatalf("%d entries after removing 50 of 100", n)
	}
	for _, slot := range w.slots[:cap(w.slots)] {
		for _, c := range slot[:cap(slot)] {
			if removed[c] {
				t.Fatal("a removed connection is still referenced by a slot")
			}
		}
	}
	w.schedule(conns[0], 10) // a close racing a reschedule: stays out
	visited := 0
	for now := int64(0); now <= 1000; now += testTick {
		w.advance(now, func(c *Conn, _ int64) (int64, bool) {
			if removed[c] {
				t.Fatal("a removed connection was visited")
			}
			visited++
			return 0, false
		})
	}
	if visited != 50 {
		t.Fatalf("%d of 50 connections visited", visited)
	}
}

// A connection rescheduled while it is visited (a close from the visit
// itself, or from another goroutine) keeps the newer deadline only.
func TestWheelRescheduleDuringVisit(t *testing.T) {
	t.Parallel()
	w := testWheel()
	c := &Conn{}
	w.schedule(c, 50)
	var at []int64
	for now := int64(0); now <= 1000; now += testTick {
		w.advance(now, func(c *Conn, now int64) (int64, bool) {
			at = append(at, now)
			if len(at) == 1 {
				w.schedule(c, now+500)
				return now + testTick, true
			}
			return 0, false
		})
	}
	if len(at) != 2 || at[1] < at[0]+500 {
		t.Fatalf("visits at %v, want two, 500 apart", at)
	}
}

// Random schedules and removals keep every slot consistent.
func TestWheelRandomOperations(t *testing.T) {
	t.Parallel()
	w := testWheel()
	conns := make([]*Conn, 64)
	for i := range conns {
		conns[i] = &Conn{}
	}
	now := int64(0)
	for range 20000 {
		c := conns[rand.IntN(len(conns))]
		switch rand.IntN(10) {
		case 0:
			w.remove(c)
			c.wheelSlot = notInWheel // reuse it as a fresh connection
		case 1:
			now += rand.Int64N(30)
			w.advance(now, func(*Conn, int64) (int64, bool) { return now + rand.Int64N(2000), rand.IntN(2) == 0 })
		default:
			w.schedule(c, now+rand.Int64N(2000))
		}
	}
	checkLinks(t, w)
	in := 0
	for _, c := range conns {
		if c.wheelSlot > notInWheel {
			in++
		}
	}
	if n := w.entries(); n != in {
		t.Fatalf("%d entries, %d connections say they are in the wheel", n, in)
	}
}

func TestWheelTick(t *testing.T) {
	t.Parallel()
	for hb, want := range map[time.Duration]time.Duration{
		25 * time.Second: 500 * time.Millisecond, time.Second: 100 * time.Millisecond, 50 * time.Millisecond: 10 * time.Millisecond,
	} {
		if got := wheelTick(hb); got != want {
			t.Errorf("wheelTick(%v) = %v, want %v", hb, got, want)
		}
	}
}
