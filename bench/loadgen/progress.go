package loadgen

import (
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// IsTerminal reports whether f is a terminal: the live display goes to
// stderr only then, so logs and CI output hold no carriage returns.
func IsTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// startProgress redraws one status line on w every second until the
// returned func is called, which ends the line.
func (s *session) startProgress(w io.Writer) (stop func()) {
	if w == nil {
		return func() {}
	}
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		last, lastT := s.received.Load(), time.Now()
		for {
			select {
			case <-quit:
				fmt.Fprintln(w)
				return
			case now := <-t.C:
				n := s.received.Load()
				rate := float64(n-last) / now.Sub(lastT).Seconds()
				last, lastT = n, now
				fmt.Fprintf(w, "\r%s\x1b[K", s.progressLine(rate))
			}
		}
	}()
	return func() { close(quit); <-done }
}

func (s *session) progressLine(rate float64) string {
	open := s.connected.Load() - s.closedEarly.Load()
	line := fmt.Sprintf("%s %-8s %5.0fs  conns %d/%d (failed %d, closed %d)  msgs/s %.0f",
		s.cfg.Scenario, s.phase.Load(), time.Since(s.start).Seconds(),
		open, s.cfg.Conns, s.failed.Load(), s.closedEarly.Load(), rate)
	if l := s.latency.merged(); l.TotalCount() > 0 {
		line += fmt.Sprintf("  p99 %.1fms", float64(l.ValueAtQuantile(99))/1000)
	}
	if s.ai != nil {
		line += fmt.Sprintf("  ai done %d", s.ai.completed.Load())
	}
	return line
}
