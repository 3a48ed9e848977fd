package loadgen

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Summary is what a run measured. Sections that do not apply to the
// scenario are omitted.
type Summary struct {
	Scenario        string  `json:"scenario"`
	DurationSeconds float64 `json:"durationSeconds"` // the whole run

	Connections ConnStats      `json:"connections"`
	Server      *ServerStats   `json:"server,omitempty"`
	Delivery    *DeliveryStats `json:"delivery,omitempty"`
	Storm       *StormStats    `json:"storm,omitempty"`
	Publish     *PublishStats  `json:"publish,omitempty"`
	AI          *AIStats       `json:"ai,omitempty"`
	// Errors counts failures by kind: dial errors, server error codes,
	// connections the server closed.
	Errors map[string]int64 `json:"errors,omitempty"`

	Loader              LoaderStats `json:"loader"`
	LoaderLimited       bool        `json:"loaderLimited"`
	LoaderLimitedReason string      `json:"loaderLimitedReason,omitempty"`
}

// ConnStats describes how the connections were opened.
type ConnStats struct {
	Target    int64 `json:"target"`
	Connected int64 `json:"connected"`
	Failed    int64 `json:"failed"`
	Joined    int64 `json:"joined"`
	// ClosedEarly counts connections the server closed before the loader did.
	ClosedEarly    int64   `json:"closedEarly"`
	ConnectSeconds float64 `json:"connectSeconds"`
	UpgradesPerSec float64 `json:"upgradesPerSec"`
	// Upgrade is from the start of the TCP connect to the end of the
	// HTTP 101 response; Join from the join frame to its joined reply.
	Upgrade Latency `json:"upgrade"`
	Join    Latency `json:"join"`
}

// ServerStats is the node's cost, from /proc (when -server-pid is given)
// and /metrics.
type ServerStats struct {
	PID            int   `json:"pid,omitempty"`
	RSSBeforeBytes int64 `json:"rssBeforeBytes,omitempty"`
	RSSAfterBytes  int64 `json:"rssAfterBytes,omitempty"`
	// BytesPerConn is (after - before) / connections; BytesPerConnSlope is
	// the least-squares slope of RSSCurve past its first quarter, which
	// leaves out the fixed start-up costs.
	BytesPerConn      float64    `json:"bytesPerConn,omitempty"`
	BytesPerConnSlope float64    `json:"bytesPerConnSlope,omitempty"`
	RSSCurve          []RSSPoint `json:"rssCurve,omitempty"`
	// CPUSeconds is the node's CPU over the measured phase.
	CPUSeconds       float64 `json:"cpuSeconds,omitempty"`
	GoroutinesBefore float64 `json:"goroutinesBefore"`
	GoroutinesAfter  float64 `json:"goroutinesAfter"`
	ConnsActiveAfter float64 `json:"connectionsActiveAfter"`
	// MessagesOut is the growth of edgehub_messages_out_total.
	MessagesOut float64 `json:"messagesOut,omitempty"`
}

// RSSPoint is one sample of the node's RSS-vs-connections curve.
type RSSPoint struct {
	Conns      int64   `json:"conns"`
	RSSBytes   int64   `json:"rssBytes"`
	Goroutines float64 `json:"goroutines"`
}

// DeliveryStats is the fanout and rooms result.
type DeliveryStats struct {
	Published     int64 `json:"published"`
	PublishErrors int64 `json:"publishErrors"`
	Acks          int64 `json:"acks,omitempty"`
	// Expected is each successful publish times the joined members of its
	// room; Lost is what of it did not arrive within the drain time.
	Expected   int64   `json:"expected"`
	Received   int64   `json:"received"`
	Lost       int64   `json:"lost"`
	Duplicates int64   `json:"duplicates"`
	PerSec     float64 `json:"deliveriesPerSec"`
	// Latency is from the send stamp in the data to its arrival.
	Latency              Latency `json:"latency"`
	CPUSecondsPerMillion float64 `json:"cpuSecondsPerMillion,omitempty"`
	// RedisCPUSeconds is Redis's own CPU (INFO cpu, sys + user) over the
	// measured phase, RedisUsPerPublish that per publish (RedisAddr only).
	RedisCPUSeconds   float64 `json:"redisCpuSeconds,omitempty"`
	RedisUsPerPublish float64 `json:"redisUsPerPublish,omitempty"`
	PublishLagMaxMs   float64 `json:"publishLagMaxMs"`
	// LoaderUsPerDelivery is the loader's CPU per delivery received;
	// LoaderMsPerMessage that times the members of a room, over its cores:
	// the least time in which the loader can read one message's deliveries.
	LoaderUsPerDelivery float64 `json:"loaderUsPerDelivery"`
	LoaderMsPerMessage  float64 `json:"loaderMsPerMessage"`
}

// PublishStats is the publish result: closed-loop publishes to one room.
type PublishStats struct {
	Acks       int64   `json:"acks"`
	Errors     int64   `json:"errors"` // error frames, e.g. unavailable
	AcksPerSec float64 `json:"acksPerSec"`
	// Ack is from writing the publish to reading its ack.
	Ack               Latency `json:"ack"`
	RedisCPUSeconds   float64 `json:"redisCpuSeconds,omitempty"`
	RedisUsPerPublish float64 `json:"redisUsPerPublish,omitempty"`
}

// StormStats is the storm result.
type StormStats struct {
	Cycles       int64   `json:"cycles"` // connect, join, hold, close
	CyclesPerSec float64 `json:"cyclesPerSec"`
}

// AIStats is the ai result.
type AIStats struct {
	Queries       int64   `json:"queries"`
	Completed     int64   `json:"completed"`
	Failed        int64   `json:"failed"`
	Unfinished    int64   `json:"unfinished"`
	SeqGaps       int64   `json:"seqGaps"`
	WrongLength   int64   `json:"wrongLength"` // answers without one chunk per word
	QueriesPerSec float64 `json:"completedPerSec"`
	Queued        Latency `json:"queued"`
	FirstChunk    Latency `json:"firstChunk"`
	Done          Latency `json:"done"`
}

// LoaderStats is the loader's own use of its machine.
type LoaderStats struct {
	Cores int `json:"cores"`
	// PeakCPUPercent is the highest share of its cores the loader used in
	// a measured phase.
	PeakCPUPercent float64 `json:"peakCpuPercent"`
	// SchedLatencyP99Ms is the highest, over the measured phases, p99 time
	// a runnable goroutine of the loader waited for a CPU.
	SchedLatencyP99Ms float64 `json:"schedLatencyP99Ms"`
	RSSBytes          int64   `json:"rssBytes"`
}

// finish fills what every scenario reports.
func (s *session) finish(sum *Summary) {
	sum.Scenario = s.cfg.Scenario
	sum.DurationSeconds = time.Since(s.start).Seconds()
	c := &sum.Connections
	c.Connected = s.connected.Load()
	c.Failed = s.failed.Load()
	c.Joined = s.joined.Load()
	c.ClosedEarly = s.closedEarly.Load()
	c.Upgrade = s.upgrade.summary()
	c.Join = s.join.summary()
	if c.ConnectSeconds > 0 {
		c.UpgradesPerSec = float64(c.Connected) / c.ConnectSeconds
	}
	self, _ := readProc(0)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.errs) > 0 {
		sum.Errors = maps.Clone(s.errs)
	}
	limits := slices.Clone(s.limits)
	for _, k := range []string{kindNoPorts, kindNoFiles} {
		if s.errs[k] > 0 {
			limits = append(limits, k)
		}
	}
	sum.Loader = LoaderStats{Cores: s.cores, PeakCPUPercent: s.loaderShare * 100,
		SchedLatencyP99Ms: s.schedLagMs, RSSBytes: self.RSS}
	sum.LoaderLimited = len(limits) > 0
	sum.LoaderLimitedReason = strings.Join(limits, "; ")
}

// perSec is n over d in seconds, 0 for an empty interval.
func perSec(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// Digest is a one-line human reading of the summary, for the end of a run.
func (sum Summary) Digest() string {
	c := sum.Connections
	line := fmt.Sprintf("%s: %d connected of %d (%.0f upgrades/s, p99 %.1fms), %d failed, %d closed by server",
		sum.Scenario, c.Connected, c.Target, c.UpgradesPerSec, c.Upgrade.P99Ms, c.Failed, c.ClosedEarly)
	if srv := sum.Server; srv != nil && srv.BytesPerConnSlope != 0 {
		line += fmt.Sprintf("; server %.0f B/conn (slope), goroutines %.0f -> %.0f",
			srv.BytesPerConnSlope, srv.GoroutinesBefore, srv.GoroutinesAfter)
	}
	if d := sum.Delivery; d != nil {
		line += fmt.Sprintf("; %.0f deliveries/s, lost %d of %d, p50 %.2fms p99 %.2fms p99.9 %.2fms max %.2fms",
			d.PerSec, d.Lost, d.Expected, d.Latency.P50Ms, d.Latency.P99Ms, d.Latency.P999Ms, d.Latency.MaxMs)
		if d.CPUSecondsPerMillion > 0 {
			line += fmt.Sprintf(", %.2f server CPU-s per million", d.CPUSecondsPerMillion)
		}
	}
	if p := sum.Publish; p != nil {
		line += fmt.Sprintf("; %.0f acked publishes/s (%d errors), ack p50 %.2fms p99 %.2fms",
			p.AcksPerSec, p.Errors, p.Ack.P50Ms, p.Ack.P99Ms)
		if p.RedisUsPerPublish > 0 {
			line += fmt.Sprintf(", Redis %.1f us CPU per publish", p.RedisUsPerPublish)
		}
	}
	if st := sum.Storm; st != nil {
		line += fmt.Sprintf("; %.0f cycles/s, server conns after %.0f", st.CyclesPerSec, sum.Server.ConnsActiveAfter)
	}
	if a := sum.AI; a != nil {
		line += fmt.Sprintf("; %d/%d answers (%d failed), first chunk p50 %.1fms p99 %.1fms, done p99 %.1fms",
			a.Completed, a.Queries, a.Failed, a.FirstChunk.P50Ms, a.FirstChunk.P99Ms, a.Done.P99Ms)
	}
	if sum.LoaderLimited {
		line += "; LOADER-LIMITED: " + sum.LoaderLimitedReason
	}
	return line
}
