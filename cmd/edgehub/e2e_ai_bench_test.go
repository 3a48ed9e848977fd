package main

// The AI offload's cost, measured (no test asserts it): 1,000 clients ask
// at once, over 2 nodes and 2 edgehub-workers on Redis (echo, no delay),
// and the same over 2 single nodes answering in process; then one client
// alone, the latency floor. Reported over the rounds:
//
//   first-p50-ms, first-p99-ms  ai-query sent to its first ai-chunk read
//   done-p50-ms                 ai-query sent to its done chunk read
//   chunk-us                    the mean gap between an answer's chunks as
//                               the client sees them (echo has no delay of
//                               its own, so this is the path's cost per
//                               chunk; a worker batches the chunks that
//                               gather while one store is in flight)
//   jobs/s                      the jobs over the time to the last done
//
//	go test -run '^$' -bench BenchmarkAIOffload -benchtime 5x ./cmd/edgehub/
//
// (-benchtime counts rounds; the one-at-a-time rows want more, e.g. 200x.)

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/edgehub/edgehub/cmd/edgehub/edgehubtest"
	"github.com/edgehub/edgehub/fanout/redistest"
)

const (
	benchJobs  = 1000
	benchWords = 10
	benchSlots = 64 // jobs each worker (or node, in process) answers at once
)

func BenchmarkAIOffload(b *testing.B) {
	b.Run("fleet", func(b *testing.B) {
		srv := redistest.Start(b)
		nodes := make([]*edgehubtest.Node, 2)
		for i := range nodes {
			nodes[i] = edgehubtest.Start(b, "-redis", srv.URL(), "-node-id", fmt.Sprintf("node%d", i+1))
		}
		bin := edgehubtest.Build(b, "cmd/edgehub-worker", "edgehub-worker")
		for i := range 2 {
			startWorker(b, bin, srv.URL(), "-consumer", fmt.Sprintf("w%d", i), "-concurrency", fmt.Sprint(benchSlots))
		}
		benchLoads(b, nodes)
	})
	b.Run("in-process", func(b *testing.B) {
		nodes := make([]*edgehubtest.Node, 2)
		for i := range nodes {
			nodes[i] = edgehubtest.Start(b, "-echo-delay", "-1ns", "-ai-workers", fmt.Sprint(benchSlots))
		}
		benchLoads(b, nodes)
	})
}

// benchLoads runs 1,000 clients at once, then one client alone (the
// latency floor: nothing queues).
func benchLoads(b *testing.B, nodes []*edgehubtest.Node) {
	b.Run(fmt.Sprintf("%d-at-once", benchJobs), func(b *testing.B) { benchAI(b, nodes, benchJobs) })
	b.Run("one-at-a-time", func(b *testing.B) { benchAI(b, nodes[:1], 1) })
}

// benchAI runs b.N rounds of one question from each of clients, spread
// over nodes.
func benchAI(b *testing.B, nodes []*edgehubtest.Node, clients int) {
	conns := make([]*wsClient, clients)
	for i := range conns {
		conns[i] = dial(b, nodes[i%len(nodes)])
	}
	var firsts, dones []time.Duration
	var gaps []time.Duration
	var total time.Duration
	b.ResetTimer()
	for round := range b.N {
		start := time.Now()
		var mu sync.Mutex
		var wg sync.WaitGroup
		errs := make(chan error, clients)
		for i, c := range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				question := fmt.Sprintf("r%d c%d w2 w3 w4 w5 w6 w7 w8 w9", round, i)
				sent := time.Now()
				if err := c.sendErr(fmt.Sprintf(`{"type":"ai-query","message":%q}`, question)); err != nil {
					errs <- err
					return
				}
				var first, last time.Time
				chunks := 0
				for {
					m, err := c.read(60 * time.Second)
					if err != nil {
						errs <- err
						return
					}
					if m.Type == "ai-error" {
						errs <- fmt.Errorf("ai-error: %s", m)
						return
					}
					if m.Type != "ai-chunk" {
						continue
					}
					now := time.Now()
					if chunks == 0 {
						first = now
					}
					last = now
					chunks++
					if string(m.field("done")) == "true" {
						break
					}
				}
				if chunks != benchWords {
					errs <- fmt.Errorf("%d chunks, want %d", chunks, benchWords)
					return
				}
				mu.Lock()
				firsts = append(firsts, first.Sub(sent))
				dones = append(dones, last.Sub(sent))
				gaps = append(gaps, last.Sub(first)/time.Duration(chunks-1))
				mu.Unlock()
			}()
		}
		wg.Wait()
		total += time.Since(start)
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	slices.Sort(firsts)
	slices.Sort(dones)
	var gapSum time.Duration
	for _, g := range gaps {
		gapSum += g
	}
	pct := func(ds []time.Duration, p float64) float64 { return float64(ds[int(p*float64(len(ds)-1))]) / 1e6 }
	b.ReportMetric(pct(firsts, 0.50), "first-p50-ms")
	b.ReportMetric(pct(firsts, 0.99), "first-p99-ms")
	b.ReportMetric(pct(dones, 0.50), "done-p50-ms")
	b.ReportMetric(float64(gapSum)/float64(len(gaps))/1e3, "chunk-us")
	b.ReportMetric(float64(clients*b.N)/total.Seconds(), "jobs/s")
	b.ReportMetric(0, "ns/op")
}
