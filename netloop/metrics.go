package netloop

import (
	"bytes"
	"fmt"

	"github.com/VictoriaMetrics/metrics"
)

// serverMetrics are the connection-level metrics; the names are part of
// the operator's contract (see the README's metrics table).
type serverMetrics struct {
	set                *metrics.Set
	connectionsTotal   *metrics.Counter
	socketsTotal       *metrics.Counter
	messagesIn         *metrics.Counter // complete text messages (fragments reassembled) handed to the Handler
	messagesOut        *metrics.Counter
	bytesIn            *metrics.Counter
	bytesOut           *metrics.Counter
	slowConsumerCloses *metrics.Counter
	writeStalls        *metrics.Counter
	writeTimeouts      *metrics.Counter
	handshakeDuration  *metrics.PrometheusHistogram
	connectionDuration *metrics.PrometheusHistogram
}

var (
	handshakeBuckets  = []float64{0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5}
	connectionBuckets = []float64{1, 10, 60, 300, 1800, 3600, 4 * 3600, 24 * 3600}
)

func newServerMetrics(set *metrics.Set, s *Server) *serverMetrics {
	if set == nil {
		set = metrics.NewSet() // not registered: counted, never exposed
	}
	m := &serverMetrics{
		set:                set,
		connectionsTotal:   set.NewCounter("edgehub_connections_total"),
		socketsTotal:       set.NewCounter("edgehub_tcp_accepts_total"),
		messagesIn:         set.NewCounter("edgehub_text_messages_in_total"),
		messagesOut:        set.NewCounter("edgehub_messages_out_total"),
		bytesIn:            set.NewCounter("edgehub_bytes_in_total"),
		bytesOut:           set.NewCounter("edgehub_bytes_out_total"),
		slowConsumerCloses: set.NewCounter("edgehub_slow_consumer_closes_total"),
		writeStalls:        set.NewCounter("edgehub_write_stalls_total"),
		writeTimeouts:      set.NewCounter("edgehub_write_timeouts_total"),
		handshakeDuration:  set.NewPrometheusHistogramExt("edgehub_handshake_duration_seconds", handshakeBuckets),
		connectionDuration: set.NewPrometheusHistogramExt("edgehub_connection_duration_seconds", connectionBuckets),
	}
	set.NewGauge("edgehub_connections_active", func() float64 { return float64(s.conns.open.Load()) })
	set.NewGauge("edgehub_tcp_connections_active", func() float64 { return float64(s.conns.len()) })
	set.NewGauge("edgehub_outbound_queued_bytes", func() float64 {
		var n int
		s.conns.each(func(c *Conn) {
			c.mu.Lock()
			n += int(c.queued)
			c.mu.Unlock()
		})
		return float64(n)
	})
	return m
}

// account records one writev: bytes written and frames completed.
func (m *serverMetrics) account(written, frames int) {
	if written > 0 {
		m.bytesOut.Add(written)
	}
	if frames > 0 {
		m.messagesOut.Add(frames)
	}
}

// rejected counts a refused handshake by the status of its answer.
func (m *serverMetrics) rejected(resp []byte) {
	status := "unknown"
	if f := bytes.Fields(resp); len(f) > 1 {
		status = string(f[1])
	}
	m.set.GetOrCreateCounter(fmt.Sprintf(`edgehub_handshakes_rejected_total{status=%q}`, status)).Inc()
}
