// Package benchplot renders the recorded load-generator runs of
// bench/results/ as PNG (or SVG, by the file's extension) charts: the node's
// RSS against idle connections, and delivery latency percentiles against
// the publish rate. It reads only loadgen.Result files and writes only the
// paths it is given.
package benchplot

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"

	"github.com/edgehub/edgehub/bench/loadgen"
)

// ErrNoData is returned for a chart none of the results can feed.
var ErrNoData = errors.New("no results for this chart")

// Load reads result files, sorted oldest first.
func Load(paths []string) ([]loadgen.Result, error) {
	var out []loadgen.Result
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		var r loadgen.Result
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, fmt.Errorf("cannot read %s: %w", p, err)
		}
		out = append(out, r)
	}
	slices.SortStableFunc(out, func(a, b loadgen.Result) int { return cmp.Compare(a.Date, b.Date) })
	return out, nil
}

// Render writes rss-vs-conns and latency-vs-rate charts (ext ".png" or
// ".svg") into dir, skipping a chart without data; it returns the files
// written.
func Render(results []loadgen.Result, dir, ext string) ([]string, error) {
	charts := []struct {
		name string
		draw func([]loadgen.Result, string) error
	}{
		{"rss-vs-conns", RSSVsConns},
		{"latency-vs-rate", LatencyVsRate},
	}
	var written []string
	for _, c := range charts {
		path := filepath.Join(dir, c.name+ext)
		switch err := c.draw(results, path); {
		case errors.Is(err, ErrNoData):
		case err != nil:
			return written, err
		default:
			written = append(written, path)
		}
	}
	return written, nil
}

// RSSVsConns draws, for each idle run with an RSS curve, the node's RSS in
// MiB against open connections.
func RSSVsConns(results []loadgen.Result, path string) error {
	p := plot.New()
	p.Title.Text = "edgehub RSS vs idle connections"
	p.X.Label.Text = "open connections"
	p.Y.Label.Text = "server RSS (MiB)"
	p.Add(plotter.NewGrid())
	var lines []any
	for _, r := range results {
		srv := r.Summary.Server
		if r.Summary.Scenario != "idle" || srv == nil || len(srv.RSSCurve) < 2 {
			continue
		}
		xys := make(plotter.XYs, 0, len(srv.RSSCurve))
		for _, pt := range srv.RSSCurve {
			xys = append(xys, plotter.XY{X: float64(pt.Conns), Y: float64(pt.RSSBytes) / (1 << 20)})
		}
		label := fmt.Sprintf("%d conns, slope %.0f B/conn (%s)", r.Config.Conns, srv.BytesPerConnSlope, r.Date)
		lines = append(lines, label, xys)
	}
	if len(lines) == 0 {
		return ErrNoData
	}
	if err := plotutil.AddLinePoints(p, lines...); err != nil {
		return err
	}
	p.Legend.Top = true
	p.Legend.Left = true
	return p.Save(8*vg.Inch, 5*vg.Inch, path)
}

// LatencyVsRate draws p50, p99 and p99.9 delivery latency against the
// publish rate for the fanout runs, one set of lines per subscriber count;
// of several runs at one rate the latest counts. The rate axis is
// logarithmic.
func LatencyVsRate(results []loadgen.Result, path string) error {
	type key struct{ conns, rooms int }
	runs := map[key]map[float64]loadgen.Latency{}
	for _, r := range results {
		d := r.Summary.Delivery
		if r.Summary.Scenario != "fanout" || d == nil || d.Latency.Count == 0 || r.Config.Rate <= 0 {
			continue
		}
		k := key{r.Config.Conns, r.Config.Rooms}
		if runs[k] == nil {
			runs[k] = map[float64]loadgen.Latency{}
		}
		runs[k][r.Config.Rate] = d.Latency // later results overwrite earlier ones
	}
	if len(runs) == 0 {
		return ErrNoData
	}
	p := plot.New()
	p.Title.Text = "edgehub fanout delivery latency vs publish rate"
	p.X.Label.Text = "publish rate (msg/s)"
	p.Y.Label.Text = "latency (ms)"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Y.Min = 0
	p.Add(plotter.NewGrid())
	var lines []any
	keys := slices.SortedFunc(maps.Keys(runs), func(a, b key) int {
		return cmp.Or(cmp.Compare(a.conns, b.conns), cmp.Compare(a.rooms, b.rooms))
	})
	for _, k := range keys {
		rates := slices.Sorted(maps.Keys(runs[k]))
		for _, q := range []struct {
			name string
			get  func(loadgen.Latency) float64
		}{
			{"p50", func(l loadgen.Latency) float64 { return l.P50Ms }},
			{"p99", func(l loadgen.Latency) float64 { return l.P99Ms }},
			{"p99.9", func(l loadgen.Latency) float64 { return l.P999Ms }},
		} {
			xys := make(plotter.XYs, 0, len(rates))
			for _, rate := range rates {
				xys = append(xys, plotter.XY{X: rate, Y: q.get(runs[k][rate])})
			}
			lines = append(lines, fmt.Sprintf("%s, %d subs / %d rooms", q.name, k.conns, k.rooms), xys)
		}
	}
	if err := plotutil.AddLinePoints(p, lines...); err != nil {
		return err
	}
	p.Legend.Top = true
	p.Legend.Left = true
	return p.Save(8*vg.Inch, 5*vg.Inch, path)
}
