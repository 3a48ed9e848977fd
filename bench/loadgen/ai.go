package loadgen

import (
	"context"
	"strconv"
	"sync/atomic"
	"time"
)

// aiState is the ai scenario's shared state. Each connection has at most
// one query in flight; the next is sent from its read loop as soon as the
// answer is done, until the deadline.
type aiState struct {
	words    int
	deadline time.Time
	query    []byte // the ai-query frame's JSON

	queued, firstChunk, done *latencyHist

	sent, completed, failed, gaps, wrongLength atomic.Int64
	inFlight                                   atomic.Int64
}

// aiJob is one connection's query in flight; only its read loop touches it
// once sent.
type aiJob struct {
	sent    time.Time
	nextSeq int64
}

// runAI connects Conns clients that each ask ai-query after ai-query for
// Duration: time to queued, to the first chunk and to the last.
func (s *session) runAI(ctx context.Context) Summary {
	var sum Summary
	sum.Connections.Target = int64(s.cfg.Conns)
	msg := ""
	for i := range s.cfg.Words {
		if i > 0 {
			msg += " "
		}
		msg += "w" + strconv.Itoa(i)
	}
	s.ai = &aiState{
		words:      s.cfg.Words,
		deadline:   time.Now().Add(s.cfg.Duration),
		query:      []byte(`{"type":"ai-query","message":"` + msg + `"}`),
		queued:     newLatencyHist(),
		firstChunk: newLatencyHist(),
		done:       newLatencyHist(),
	}
	a := s.ai
	before := s.probe.sample(ctx)
	phase := s.measureLoader("ai")
	sum.Connections.ConnectSeconds = s.connect(ctx, s.cfg.Conns, nil).Seconds()
	s.mu.Lock()
	clients := s.clients
	s.mu.Unlock()
	// The deadline counts from the first query, not from the start of
	// connecting.
	a.deadline = time.Now().Add(s.cfg.Duration)
	t0 := time.Now()
	cpu := s.probe.cpu()
	for _, c := range clients {
		a.ask(s, c)
	}
	sleep(ctx, s.cfg.Duration)
	s.phase.Store("drain")
	s.waitFor(ctx, s.cfg.Drain, func() bool { return a.inFlight.Load() == 0 })
	phase.end(s, a.firstChunk.summary().P99Ms, "first-chunk")
	sum.Server = s.probe.stats(before, s.probe.sample(ctx))
	if cpu != nil {
		used, _ := cpu.stop()
		sum.Server.CPUSeconds = used.Seconds()
	}
	sum.AI = &AIStats{
		Queries:       a.sent.Load(),
		Completed:     a.completed.Load(),
		Failed:        a.failed.Load(),
		Unfinished:    a.inFlight.Load(),
		SeqGaps:       a.gaps.Load(),
		WrongLength:   a.wrongLength.Load(),
		QueriesPerSec: perSec(a.completed.Load(), time.Since(t0)),
		Queued:        a.queued.summary(),
		FirstChunk:    a.firstChunk.summary(),
		Done:          a.done.summary(),
	}
	return sum
}

// ask sends c's next query. c.ai is set before the write so the reply,
// which may come at once, finds it; c's read loop or the starting goroutine
// (before any reply can exist) is the only writer of c.ai.
func (a *aiState) ask(s *session, c *client) {
	c.ai = &aiJob{sent: time.Now()}
	a.sent.Add(1)
	a.inFlight.Add(1)
	if err := c.writeText(append([]byte(nil), a.query...)); err != nil {
		s.count(errorKind(err))
		a.end(s, c, false)
	}
}

// onFrame handles queued, ai-chunk, ai-error and error frames on c's read
// loop.
func (a *aiState) onFrame(s *session, c *client, typ, msg []byte) {
	job := c.ai
	if job == nil {
		s.count("ai frame without a query: " + string(typ))
		return
	}
	switch string(typ) {
	case "queued":
		a.queued.record(c.id, time.Since(job.sent))
	case "ai-chunk":
		seq, _ := jsonInt(msg, keySeq)
		if seq != job.nextSeq {
			a.gaps.Add(1)
		}
		if seq == 0 {
			a.firstChunk.record(c.id, time.Since(job.sent))
		}
		job.nextSeq = seq + 1
		if jsonTrue(msg, keyDone) {
			a.done.record(c.id, time.Since(job.sent))
			if job.nextSeq != int64(a.words) {
				a.wrongLength.Add(1)
			}
			a.end(s, c, true)
		}
	default: // ai-error, error
		a.end(s, c, false)
	}
}

// end closes c's query and asks the next one until the deadline.
func (a *aiState) end(s *session, c *client, ok bool) {
	c.ai = nil
	if ok {
		a.completed.Add(1)
	} else {
		a.failed.Add(1)
	}
	a.inFlight.Add(-1)
	if time.Now().Before(a.deadline) && !c.closed.Load() {
		a.ask(s, c)
	}
}
