package fanout

import (
	"fmt"

	"github.com/VictoriaMetrics/metrics"
)

// redisMetrics are the Redis bus's metrics; shard labels are the shard's
// position in -redis.
type redisMetrics struct {
	shards    []*shardMetrics
	lag       *metrics.PrometheusHistogram
	dropped   *metrics.Counter
	malformed *metrics.Counter
	set       *metrics.Set
}

type shardMetrics struct {
	publish       *metrics.PrometheusHistogram
	publishErrors *metrics.Counter
	subscriptions *metrics.Gauge
	resubscribes  *metrics.Counter
	cacheHits     *metrics.Counter
	cacheMisses   *metrics.Counter
}

func (m *shardMetrics) cache(hit bool) {
	if hit {
		m.cacheHits.Inc()
	} else {
		m.cacheMisses.Inc()
	}
}

// latencyBuckets suit Redis round trips and bus lag: 100 µs to 10 s.
var latencyBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

func newRedisMetrics(set *metrics.Set, shards int) *redisMetrics {
	if set == nil {
		set = metrics.NewSet() // counted, not exported
	}
	m := &redisMetrics{
		set:       set,
		lag:       set.NewPrometheusHistogramExt("edgehub_bus_lag_seconds", latencyBuckets),
		dropped:   set.NewCounter("edgehub_bus_dropped_total"),
		malformed: set.NewCounter("edgehub_bus_malformed_total"),
	}
	for i := range shards {
		l := fmt.Sprintf(`{shard="%d"}`, i)
		m.shards = append(m.shards, &shardMetrics{
			publish:       set.NewPrometheusHistogramExt("edgehub_redis_publish_duration_seconds"+l, latencyBuckets),
			publishErrors: set.NewCounter("edgehub_redis_publish_errors_total" + l),
			subscriptions: set.NewGauge("edgehub_redis_subscriptions"+l, nil),
			resubscribes:  set.NewCounter("edgehub_redis_resubscribes_total" + l),
			cacheHits:     set.NewCounter("edgehub_redis_cache_hits_total" + l),
			cacheMisses:   set.NewCounter("edgehub_redis_cache_misses_total" + l),
		})
	}
	return m
}

// watch exports the sync layer's counts.
func (m *redisMetrics) watch(s *syncBus) {
	m.set.NewGauge("edgehub_bus_gap_filled_total", func() float64 { return float64(s.Stats().GapFilled) })
	m.set.NewGauge("edgehub_bus_lost_total", func() float64 { return float64(s.Stats().Lost) })
}
