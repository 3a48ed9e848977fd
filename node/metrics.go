package node

import (
	"fmt"

	"github.com/VictoriaMetrics/metrics"
)

// messageTypes are the client message types counted by name; anything else
// counts as "unknown", and undecodable messages as "invalid".
var messageTypes = []string{"join", "leave", "publish", "ping", "ai-query", "ai-cancel", "ai-resume", "unknown", "invalid"}

// nodeMetrics are the protocol-level metrics; netloop registers the
// connection-level ones in the same set.
type nodeMetrics struct {
	set             *metrics.Set
	messagesIn      map[string]*metrics.Counter
	rateLimited     *metrics.Counter
	publishDuration *metrics.PrometheusHistogram
	aiFirstChunk    *metrics.PrometheusHistogram
}

var (
	publishBuckets    = []float64{0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5}
	firstChunkBuckets = []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}
)

func newNodeMetrics(n *Node) *nodeMetrics {
	set := metrics.NewSet()
	m := &nodeMetrics{
		set:             set,
		messagesIn:      make(map[string]*metrics.Counter, len(messageTypes)),
		rateLimited:     set.NewCounter("edgehub_rate_limited_total"),
		publishDuration: set.NewPrometheusHistogramExt("edgehub_publish_duration_seconds", publishBuckets),
		aiFirstChunk:    set.NewPrometheusHistogramExt("edgehub_ai_first_chunk_seconds", firstChunkBuckets),
	}
	for _, t := range messageTypes {
		m.messagesIn[t] = set.NewCounter(fmt.Sprintf(`edgehub_messages_in_total{type=%q}`, t))
	}
	set.NewGauge("edgehub_rooms_active", func() float64 { return float64(n.hub.Rooms()) })
	set.NewGauge("edgehub_draining", func() float64 {
		if n.draining.Load() {
			return 1
		}
		return 0
	})
	return m
}

// messageIn counts a client message by type; nil is an undecodable one.
func (m *nodeMetrics) messageIn(typ []byte) {
	if typ == nil {
		m.messagesIn["invalid"].Inc()
		return
	}
	c, ok := m.messagesIn[string(typ)] // no allocation: map index by converted bytes
	if !ok {
		c = m.messagesIn["unknown"]
	}
	c.Inc()
}

// aiJob counts a job reaching a state (queued, done, failed, cancelled,
// timeout).
func (m *nodeMetrics) aiJob(queue, state string) {
	m.set.GetOrCreateCounter(fmt.Sprintf(`edgehub_ai_jobs_total{queue=%q,state=%q}`, queue, state)).Inc()
}
