package loadgen

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// runStorm keeps Conns connections churning for Duration: each slot dials,
// joins a room, stays about Lifetime, closes and dials again. It reports the
// cycle rate and whether the node returns to its starting goroutine and
// connection counts once the storm is over.
func (s *session) runStorm(ctx context.Context) Summary {
	var sum Summary
	sum.Connections.Target = int64(s.cfg.Conns)
	before := s.probe.sample(ctx)
	stormCtx, cancel := context.WithTimeout(ctx, s.cfg.Duration)
	defer cancel()

	var cycles atomic.Int64
	var wg sync.WaitGroup
	phase := s.measureLoader("storm")
	t0 := time.Now()
	for range s.cfg.Conns {
		wg.Go(func() {
			for stormCtx.Err() == nil {
				c, err := s.dial(stormCtx)
				if err != nil {
					sleep(stormCtx, 10*time.Millisecond) // do not spin on a refusing server
					continue
				}
				s.joinRoom(c)
				life := s.cfg.Lifetime/2 + rand.N(s.cfg.Lifetime)
				select {
				case <-time.After(life):
				case <-stormCtx.Done():
				case <-c.done: // closed by the server: counted by onExit
				}
				c.close()
				<-c.done
				cycles.Add(1)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(t0)
	phase.end(s, s.upgrade.summary().P99Ms, "upgrade")
	sum.Connections.ConnectSeconds = elapsed.Seconds()
	sum.Storm = &StormStats{Cycles: cycles.Load(), CyclesPerSec: perSec(cycles.Load(), elapsed)}

	// The node handles the last closes asynchronously: give it a moment
	// before reading whether it is back where it started.
	s.phase.Store("settle")
	s.waitFor(ctx, s.cfg.Drain, func() bool {
		return s.probe.sample(ctx).ConnsActive <= before.ConnsActive
	})
	sum.Server = s.probe.stats(before, s.probe.sample(ctx))
	return sum
}
