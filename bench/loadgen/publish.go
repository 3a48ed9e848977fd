package loadgen

import (
	"context"
	"sync"
	"time"
)

// runPublish measures one room's publish throughput: Conns connections,
// none of them members (a publish needs no membership, so no deliveries
// come back to compete with the acks), each publish to room r0 over
// WebSocket and wait for its ack (or error) before the next, for Duration.
// Publishes per second with acks, the ack's latency, Redis's CPU per publish.
func (s *session) runPublish(ctx context.Context) Summary {
	var sum Summary
	sum.Connections.Target = int64(s.cfg.Conns)
	sum.Connections.ConnectSeconds = s.connect(ctx, s.cfg.Conns, func(c *client) {
		c.answers = make(chan struct{}, 1)
	}).Seconds()
	s.mu.Lock()
	publishers := s.clients
	s.mu.Unlock()

	before := s.probe.sample(ctx)
	cpu := s.probe.cpu()
	redis0, redisErr := s.redisCPU()
	phase := s.measureLoader("publish")
	s.phase.Store("publish")
	acks0, errs0 := s.acks.Load(), s.serverErrors.Load()
	t0 := time.Now()
	runCtx, cancel := context.WithTimeout(ctx, s.cfg.Duration)
	defer cancel()
	var wg sync.WaitGroup
	for _, c := range publishers {
		wg.Go(func() { s.publishLoop(runCtx, c) })
	}
	wg.Wait()
	elapsed := time.Since(t0)

	st := &PublishStats{Acks: s.acks.Load() - acks0, Errors: s.serverErrors.Load() - errs0, Ack: s.latency.summary()}
	st.AcksPerSec = perSec(st.Acks, elapsed)
	phase.end(s, st.Ack.P99Ms, "ack")
	srv := s.probe.stats(before, s.probe.sample(ctx))
	if cpu != nil {
		used, _ := cpu.stop()
		srv.CPUSeconds = used.Seconds()
	}
	if redis1, err := s.redisCPU(); s.cfg.RedisAddr != "" && redisErr == nil && err == nil && st.Acks > 0 {
		st.RedisCPUSeconds = (redis1 - redis0).Seconds()
		st.RedisUsPerPublish = st.RedisCPUSeconds * 1e6 / float64(st.Acks)
	}
	sum.Server = srv
	sum.Publish = st
	return sum
}

// publishLoop publishes on c, one at a time, until ctx ends; a publish not
// answered within the write timeout ends the loop (counted).
func (s *session) publishLoop(ctx context.Context, c *client) {
	for seq := int64(0); ctx.Err() == nil; seq++ {
		// A fresh buffer each time: writeText masks its payload in place.
		buf := append(make([]byte, 0, 64+s.cfg.Size), `{"type":"publish","room":"r0","data":`...)
		buf = appendStamp(buf, time.Now().UnixNano(), seq, s.cfg.Size)
		buf = append(buf, '}')
		t := time.Now()
		if err := c.writeText(buf); err != nil {
			s.count(errorKind(err))
			return
		}
		select {
		case <-c.answers:
			s.latency.record(c.id, time.Since(t))
		case <-time.After(writeTimeout):
			s.count("publish unanswered within " + writeTimeout.String())
			return
		case <-c.done:
			return
		}
	}
}
