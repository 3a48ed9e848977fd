package loadgen

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// serverProbe reads the node's cost: /proc for RSS and CPU when the pid is
// known, /metrics for what only the node can say (goroutines, connections).
type serverProbe struct {
	pid     int
	metrics string
	http    *http.Client
}

// serverSample is one reading; a field the probe could not read is zero.
type serverSample struct {
	procSample
	Goroutines  float64
	ConnsActive float64
	MessagesOut float64
}

func newServerProbe(cfg Config) *serverProbe {
	return &serverProbe{
		pid:     cfg.ServerPID,
		metrics: cfg.httpBase() + "/metrics",
		http:    &http.Client{Timeout: 5 * time.Second},
	}
}

func (p *serverProbe) sample(ctx context.Context) serverSample {
	var s serverSample
	if p.pid != 0 {
		s.procSample, _ = readProc(p.pid)
	}
	m, err := p.scrape(ctx)
	if err == nil {
		s.Goroutines = m["go_goroutines"]
		s.ConnsActive = m["edgehub_connections_active"]
		s.MessagesOut = m["edgehub_messages_out_total"]
	}
	return s
}

// stats is the node's cost between two samples.
func (p *serverProbe) stats(before, after serverSample) *ServerStats {
	return &ServerStats{
		PID:              p.pid,
		RSSBeforeBytes:   before.RSS,
		RSSAfterBytes:    after.RSS,
		GoroutinesBefore: before.Goroutines,
		GoroutinesAfter:  after.Goroutines,
		ConnsActiveAfter: after.ConnsActive,
		MessagesOut:      after.MessagesOut - before.MessagesOut,
	}
}

// cpu returns a meter of the server's CPU over the next interval, or nil
// when its pid is unknown.
func (p *serverProbe) cpu() *cpuMeter {
	if p.pid == 0 {
		return nil
	}
	m := startCPU(p.pid, 1)
	return &m
}

// scrape reads the Prometheus text at /metrics, summing each metric's
// series over their labels.
func (p *serverProbe) scrape(ctx context.Context) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.metrics, nil)
	if err != nil {
		return nil, err
	}
	resp, err := p.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return parseMetrics(resp.Body)
}

func parseMetrics(r io.Reader) (map[string]float64, error) {
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 {
			continue
		}
		name := line[:sp]
		if i := strings.IndexByte(name, '{'); i >= 0 {
			name = name[:i]
		}
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil {
			continue
		}
		out[strings.TrimSpace(name)] += v
	}
	return out, sc.Err()
}
