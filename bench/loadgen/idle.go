package loadgen

import (
	"context"
	"time"
)

// runIdle opens Conns connections in steps of Step, each joining a room,
// samples the node's RSS after every step, then holds them all for Duration
// and samples again: memory per idle connection and whether the node's
// goroutine count stays flat.
func (s *session) runIdle(ctx context.Context) Summary {
	cfg := s.cfg
	before := s.probe.sample(ctx)
	curve := []RSSPoint{{0, before.RSS, before.Goroutines}}
	var sum Summary
	sum.Connections.Target = int64(cfg.Conns)

	phase := s.measureLoader("connect")
	var connecting time.Duration
	for opened := 0; opened < cfg.Conns && ctx.Err() == nil; opened += cfg.Step {
		connecting += s.connect(ctx, min(cfg.Step, cfg.Conns-opened), s.joinRoom)
		s.waitJoined(ctx)
		p := s.probe.sample(ctx)
		curve = append(curve, RSSPoint{s.connected.Load() - s.closedEarly.Load(), p.RSS, p.Goroutines})
	}
	phase.end(s, s.upgrade.summary().P99Ms, "upgrade")
	sum.Connections.ConnectSeconds = connecting.Seconds()

	if cfg.StartFile != "" {
		s.awaitStart(ctx) // several loaders: all connected before any hold ends
	}
	s.phase.Store("hold")
	sleep(ctx, cfg.Duration)
	srv := s.probe.stats(before, s.probe.sample(ctx))
	srv.RSSCurve = curve
	// Per connection from the curve's last point, taken right after the
	// last join, before the hold lets anything settle or grow.
	if held, last := curve[len(curve)-1].Conns, curve[len(curve)-1].RSSBytes; held > 0 && last > 0 {
		srv.BytesPerConn = float64(last-before.RSS) / float64(held)
	}
	srv.BytesPerConnSlope = rssSlope(curve)
	sum.Server = srv
	return sum
}

// rssSlope is the least-squares slope in bytes per connection of the curve's
// points past its first quarter (e.g. 5,000 to 18,000 of 18,000), or 0 with
// fewer than two such points.
func rssSlope(curve []RSSPoint) float64 {
	if len(curve) == 0 {
		return 0
	}
	from := curve[len(curve)-1].Conns / 4
	var n, sx, sy, sxx, sxy float64
	for _, p := range curve {
		if p.Conns < from || p.RSSBytes == 0 {
			continue
		}
		x, y := float64(p.Conns), float64(p.RSSBytes)
		n++
		sx += x
		sy += y
		sxx += x * x
		sxy += x * y
	}
	d := n*sxx - sx*sx
	if n < 2 || d == 0 {
		return 0
	}
	return (n*sxy - sx*sy) / d
}
