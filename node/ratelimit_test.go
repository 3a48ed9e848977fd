package node

import (
	"testing"
	"time"
)

// send feeds allow count messages, one every interval from *now, and
// returns how many were refused and the index of the first that was abuse
// (-1 for none).
func send(allow func(time.Time) (bool, bool), now *time.Time, count int, interval time.Duration) (refused, abuseAt int) {
	abuseAt = -1
	for i := range count {
		ok, abuse := allow(*now)
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

// TestLimiter runs each case against a bucket made at the upgrade and
// against the session's rateState, which makes its bucket only after
// RateBurst messages: both must refuse and close alike.
func TestLimiter(t *testing.T) {
	t.Parallel()
	cfg := Config{RateLimit: 50, RateBurst: 50}
	for name, newAllow := range map[string]func() func(time.Time) (bool, bool){
		"eager": func() func(time.Time) (bool, bool) { return newLimiter(&cfg).allow },
		"lazy": func() func(time.Time) (bool, bool) {
			var r rateState
			return func(now time.Time) (bool, bool) { return r.allow(&cfg, now) }
		},
	} {
		t.Run(name, func(t *testing.T) { testLimiter(t, newAllow) })
	}
}

func testLimiter(t *testing.T, newAllow func() func(time.Time) (bool, bool)) {
	start := time.Unix(1_000_000, 0)

	t.Run("steady-at-the-limit", func(t *testing.T) {
		now := start
		l := newAllow()
		if refused, abuseAt := send(l, &now, 50*60, time.Second/50); refused != 0 || abuseAt >= 0 {
			t.Fatalf("50/s for a minute: %d refused, abuse at %d", refused, abuseAt)
		}
	})
	t.Run("steady-4x", func(t *testing.T) {
		// Every refill lets one message through: refusals are never 100
		// in a row, yet 150 a second are refused.
		now := start
		l := newAllow()
		_, abuseAt := send(l, &now, 200*10, time.Second/200)
		if abuseAt < 0 || abuseAt > 200 {
			t.Fatalf("200/s against 50/s: abuse at message %d, want within the first second", abuseAt)
		}
	})
	t.Run("slightly-over-for-long", func(t *testing.T) {
		// 60/s: 10 refused a second, 100 within 10 s > 50.
		now := start
		l := newAllow()
		if _, abuseAt := send(l, &now, 60*20, time.Second/60); abuseAt < 0 {
			t.Fatal("60/s against 50/s for 20 s was never abuse")
		}
	})
	t.Run("bursts-spread-out", func(t *testing.T) {
		// 100 at once every 11 s: 50 refused each time, never more than
		// 50 within 10 s.
		now := start
		l := newAllow()
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
		l := newAllow()
		send(l, &now, 100, 0) // 50 refused
		now = now.Add(5 * time.Second)
		// The bucket refilled (50 pass); the next refusal is the 51st
		// within 10 s.
		if _, abuseAt := send(l, &now, 51, 0); abuseAt != 50 {
			t.Fatalf("second burst: abuse at message %d, want 50 (refusal 51 in 5 s)", abuseAt)
		}
	})
}

// A connection that sent fewer than RateBurst messages carries no bucket;
// the one after them makes it, already emptied by them.
func TestRateStateMakesTheBucketLate(t *testing.T) {
	t.Parallel()
	cfg := Config{RateLimit: 50, RateBurst: 50}
	var r rateState
	now := time.Unix(1_000_000, 0)
	for i := range 50 {
		if ok, _ := r.allow(&cfg, now); !ok || r.limiter != nil {
			t.Fatalf("message %d: allowed %v, bucket %v; want allowed with no bucket", i, ok, r.limiter != nil)
		}
	}
	if ok, _ := r.allow(&cfg, now); ok || r.limiter == nil {
		t.Fatalf("message 51 at once: allowed %v, bucket %v; want refused by a new, empty bucket", ok, r.limiter != nil)
	}
	if ok, _ := r.allow(&cfg, now.Add(time.Second/50)); !ok {
		t.Fatal("a refill later: refused")
	}
}
