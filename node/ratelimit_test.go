package node

import (
	"testing"
	"time"
)

// send feeds l count messages, one every interval from *now, and returns
// how many were refused and the index of the first that was abuse (-1 for
// none).
func send(l *limiter, now *time.Time, count int, interval time.Duration) (refused, abuseAt int) {
	abuseAt = -1
	for i := range count {
		ok, abuse := l.allow(*now)
		if !ok {
			refused++
		}
		if abuse && abuseAt < 0 {
			abuseAt = i
		}
		*now = now.Add(interval)
	}
	return refused, abuseAt
}

func TestLimiter(t *testing.T) {
	t.Parallel()
	cfg := Config{RateLimit: 50, RateBurst: 50}
	start := time.Unix(1_000_000, 0)

	t.Run("steady-at-the-limit", func(t *testing.T) {
		now := start
		l := newLimiter(&cfg)
		if refused, abuseAt := send(l, &now, 50*60, time.Second/50); refused != 0 || abuseAt >= 0 {
			t.Fatalf("50/s for a minute: %d refused, abuse at %d", refused, abuseAt)
		}
	})
	t.Run("steady-4x", func(t *testing.T) {
		// Every refill lets one message through: refusals are never 100
		// in a row, yet 150 a second are refused.
		now := start
		l := newLimiter(&cfg)
		_, abuseAt := send(l, &now, 200*10, time.Second/200)
		if abuseAt < 0 || abuseAt > 200 {
			t.Fatalf("200/s against 50/s: abuse at message %d, want within the first second", abuseAt)
		}
	})
	t.Run("slightly-over-for-long", func(t *testing.T) {
		// 60/s: 10 refused a second, 100 within 10 s > 50.
		now := start
		l := newLimiter(&cfg)
		if _, abuseAt := send(l, &now, 60*20, time.Second/60); abuseAt < 0 {
			t.Fatal("60/s against 50/s for 20 s was never abuse")
		}
	})
	t.Run("bursts-spread-out", func(t *testing.T) {
		// 100 at once every 11 s: 50 refused each time, never more than
		// 50 within 10 s.
		now := start
		l := newLimiter(&cfg)
		for range 5 {
			refused, abuseAt := send(l, &now, 100, 0)
			if refused != 50 || abuseAt >= 0 {
				t.Fatalf("a burst of 100: %d refused, abuse at %d; want 50 refused, no abuse", refused, abuseAt)
			}
			now = now.Add(11 * time.Second)
		}
	})
	t.Run("bursts-within-the-window", func(t *testing.T) {
		now := start
		l := newLimiter(&cfg)
		send(l, &now, 100, 0) // 50 refused
		now = now.Add(5 * time.Second)
		// The bucket refilled (50 pass); the next refusal is the 51st
		// within 10 s.
		if _, abuseAt := send(l, &now, 51, 0); abuseAt != 50 {
			t.Fatalf("second burst: abuse at message %d, want 50 (refusal 51 in 5 s)", abuseAt)
		}
	})
}
