package loadgen

import (
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Histograms hold microseconds from 1 µs to 10 minutes at 3 significant
// digits (~0.1% error), ~160 KiB each.
const (
	histMin    = 1
	histMax    = int64(10 * time.Minute / time.Microsecond)
	histDigits = 3
	histShards = 8
)

// latencyHist is an HDR histogram split into shards picked by connection, so
// that thousands of read loops recording at once rarely wait on one lock.
type latencyHist struct {
	shards [histShards]struct {
		sync.Mutex
		h *hdrhistogram.Histogram
	}
}

func newLatencyHist() *latencyHist {
	l := &latencyHist{}
	for i := range l.shards {
		l.shards[i].h = hdrhistogram.New(histMin, histMax, histDigits)
	}
	return l
}

// record adds d under shard key k (any int: the connection id).
func (l *latencyHist) record(k int, d time.Duration) {
	us := min(max(d.Microseconds(), histMin), histMax)
	s := &l.shards[uint(k)%histShards]
	s.Lock()
	_ = s.h.RecordValue(us) // cannot fail: clamped to the histogram's range
	s.Unlock()
}

// reset forgets every value recorded so far.
func (l *latencyHist) reset() {
	for i := range l.shards {
		s := &l.shards[i]
		s.Lock()
		s.h.Reset()
		s.Unlock()
	}
}

// merged returns a new histogram holding every shard's values.
func (l *latencyHist) merged() *hdrhistogram.Histogram {
	out := hdrhistogram.New(histMin, histMax, histDigits)
	for i := range l.shards {
		s := &l.shards[i]
		s.Lock()
		out.Merge(s.h)
		s.Unlock()
	}
	return out
}

// Latency is the summary of one histogram, in milliseconds.
type Latency struct {
	Count  int64   `json:"count"`
	MeanMs float64 `json:"meanMs"`
	P50Ms  float64 `json:"p50Ms"`
	P90Ms  float64 `json:"p90Ms"`
	P99Ms  float64 `json:"p99Ms"`
	P999Ms float64 `json:"p999Ms"`
	MaxMs  float64 `json:"maxMs"`
}

func latencyOf(h *hdrhistogram.Histogram) Latency {
	ms := func(us int64) float64 { return float64(us) / 1000 }
	return Latency{
		Count:  h.TotalCount(),
		MeanMs: h.Mean() / 1000,
		P50Ms:  ms(h.ValueAtQuantile(50)),
		P90Ms:  ms(h.ValueAtQuantile(90)),
		P99Ms:  ms(h.ValueAtQuantile(99)),
		P999Ms: ms(h.ValueAtQuantile(99.9)),
		MaxMs:  ms(h.Max()),
	}
}

// summary is latencyOf(l.merged()).
func (l *latencyHist) summary() Latency { return latencyOf(l.merged()) }
