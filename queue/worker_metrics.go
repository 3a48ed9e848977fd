package queue

import (
	"fmt"

	"github.com/VictoriaMetrics/metrics"
)

// workerMetrics are a worker's own: jobs by queue and state, reclaims,
// dead letters, time to first chunk, the gap between chunks, chunks (whose
// rate is chunks per second).
type workerMetrics struct {
	set        *metrics.Set
	reclaimed  *metrics.Counter
	dead       *metrics.Counter
	reset      *metrics.Counter
	chunks     *metrics.Counter
	firstChunk *metrics.PrometheusHistogram
	chunkGap   *metrics.PrometheusHistogram
}

var (
	firstChunkBuckets = []float64{0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}
	chunkGapBuckets   = []float64{0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5}
)

func newWorkerMetrics(set *metrics.Set, w *Worker) *workerMetrics {
	if set == nil {
		set = metrics.NewSet() // counted, never served
	}
	set.NewGauge("edgehub_ai_worker_running", func() float64 { return float64(w.Running()) })
	return &workerMetrics{
		set:        set,
		reclaimed:  set.NewCounter("edgehub_ai_reclaimed_total"),
		dead:       set.NewCounter("edgehub_ai_dead_lettered_total"),
		reset:      set.NewCounter("edgehub_ai_attempts_restarted_total"),
		chunks:     set.NewCounter("edgehub_ai_chunks_total"),
		firstChunk: set.NewPrometheusHistogramExt("edgehub_ai_worker_first_chunk_seconds", firstChunkBuckets),
		chunkGap:   set.NewPrometheusHistogramExt("edgehub_ai_chunk_gap_seconds", chunkGapBuckets),
	}
}

// job counts a job reaching a state.
func (m *workerMetrics) job(queue, state string) {
	m.set.GetOrCreateCounter(fmt.Sprintf(`edgehub_ai_jobs_total{queue=%q,state=%q}`, queue, state)).Inc()
}
