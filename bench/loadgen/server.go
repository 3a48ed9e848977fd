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

// serverProbe reads the nodes' cost: /proc for RSS and CPU when the pids
// are known, /metrics for what only a node can say (goroutines,
// connections); with several nodes (Config.Spread) each figure is their sum.
type serverProbe struct {
	pids    []int
	metrics []string
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
	p := &serverProbe{pids: cfg.pids(), http: &http.Client{Timeout: 5 * time.Second}}
	for _, u := range cfg.urls() {
		p.metrics = append(p.metrics, httpBaseOf(u)+"/metrics")
	}
	return p
}

func (p *serverProbe) sample(ctx context.Context) serverSample {
	var s serverSample
	s.procSample, _ = readProcs(p.pids)
	for _, url := range p.metrics {
		m, err := p.scrape(ctx, url)
		if err != nil {
			continue
		}
		s.Goroutines += m["go_goroutines"]
		s.ConnsActive += m["edgehub_connections_active"]
		s.MessagesOut += m["edgehub_messages_out_total"]
	}
	return s
}

// stats is the node's cost between two samples.
func (p *serverProbe) stats(before, after serverSample) *ServerStats {
	return &ServerStats{
		PID:              p.pid(),
		RSSBeforeBytes:   before.RSS,
		RSSAfterBytes:    after.RSS,
		GoroutinesBefore: before.Goroutines,
		GoroutinesAfter:  after.Goroutines,
		ConnsActiveAfter: after.ConnsActive,
		MessagesOut:      after.MessagesOut - before.MessagesOut,
	}
}

// pid is the first node's, 0 when unknown.
func (p *serverProbe) pid() int {
	if len(p.pids) == 0 {
		return 0
	}
	return p.pids[0]
}

// cpu returns a meter of the nodes' CPU over the next interval, or nil
// when their pids are unknown.
func (p *serverProbe) cpu() *cpuMeter {
	if len(p.pids) == 0 {
		return nil
	}
	m := startCPU(p.pids, 1)
	return &m
}

// scrape reads the Prometheus text at /metrics, summing each metric's
// series over their labels.
func (p *serverProbe) scrape(ctx context.Context, url string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
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
