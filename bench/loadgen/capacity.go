package loadgen

import (
	"fmt"
	"math"
	"runtime/metrics"
	"time"
)

// The loader checks its own capacity two ways. CPU: a phase that kept it
// above loaderBusy of its cores. Scheduling: the Go runtime's histogram of
// how long runnable goroutines waited for a CPU (/sched/latencies); a read
// loop that waits there adds that wait to every latency it records, so
// when that wait's p99 is a noticeable share of the measured p99, the
// figure is the loader's as much as the server's.
const (
	loaderBusy     = 0.9  // CPU share of its cores
	loaderLagShare = 0.10 // scheduling-wait p99 over measured p99
	schedMetric    = "/sched/latencies:seconds"
)

// loaderPhase measures the loader over one phase of a run.
type loaderPhase struct {
	name  string
	cpu   cpuMeter
	sched *metrics.Float64Histogram
}

func (s *session) measureLoader(phase string) *loaderPhase {
	s.phase.Store(phase)
	return &loaderPhase{name: phase, cpu: startCPU([]int{0}, s.cores), sched: readSched()}
}

// end closes the phase and returns the loader's CPU time in it.
// measuredP99Ms is the p99 latency the phase measured (0 when it measured
// none) and what names it.
func (p *loaderPhase) end(s *session, measuredP99Ms float64, what string) time.Duration {
	used, share := p.cpu.stop()
	lagMs := schedQuantile(p.sched, readSched(), 0.99).Seconds() * 1000
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loaderShare = max(s.loaderShare, share)
	s.schedLagMs = max(s.schedLagMs, lagMs)
	if share >= loaderBusy {
		s.limits = append(s.limits, fmt.Sprintf("loader CPU at %.0f%% of its %d core(s) during %s",
			share*100, s.cores, p.name))
	}
	if measuredP99Ms > 0 && lagMs >= loaderLagShare*measuredP99Ms {
		s.limits = append(s.limits, fmt.Sprintf(
			"loader goroutines waited p99 %.1fms for a CPU during %s, %.0f%% of the %s p99 %.1fms",
			lagMs, p.name, 100*lagMs/measuredP99Ms, what, measuredP99Ms))
	}
	return used
}

// noteBurstCost checks the loader's cost of one broadcast: with one read
// loop per connection on few cores, reading a message's deliveries to all
// members takes the loader burstMs of CPU by itself, a floor under the
// latencies it can see that the scheduler histogram does not show (the
// data waits in the kernel's socket buffers, not in the run queue).
func (s *session) noteBurstCost(burstMs, measuredP99Ms float64, members int64) {
	if measuredP99Ms <= 0 || burstMs < loaderLagShare*measuredP99Ms {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limits = append(s.limits, fmt.Sprintf(
		"reading one message's %d deliveries costs the loader %.1fms of CPU on %d core(s), %.0f%% of the delivery p99 %.1fms",
		members, burstMs, s.cores, 100*burstMs/measuredP99Ms, measuredP99Ms))
}

func readSched() *metrics.Float64Histogram {
	sample := []metrics.Sample{{Name: schedMetric}}
	metrics.Read(sample)
	if sample[0].Value.Kind() != metrics.KindFloat64Histogram {
		return nil
	}
	return sample[0].Value.Float64Histogram()
}

// schedQuantile returns the q quantile of what was recorded between two
// readings of a cumulative runtime histogram (the upper bound of its
// bucket), or 0 without data.
func schedQuantile(before, after *metrics.Float64Histogram, q float64) time.Duration {
	if before == nil || after == nil || len(before.Counts) != len(after.Counts) {
		return 0
	}
	var total uint64
	for i := range after.Counts {
		total += after.Counts[i] - before.Counts[i]
	}
	if total == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(total)))
	var seen uint64
	for i := range after.Counts {
		seen += after.Counts[i] - before.Counts[i]
		if seen >= rank {
			upper := after.Buckets[i+1]
			if math.IsInf(upper, 1) {
				upper = after.Buckets[i]
			}
			return time.Duration(upper * float64(time.Second))
		}
	}
	return 0
}
