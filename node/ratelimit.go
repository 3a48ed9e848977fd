package node

import (
	"time"

	"golang.org/x/time/rate"
)

// refusalWindow is how far back a connection's refused messages count
// towards closing it (PROTOCOL.md, close 1008: more refused messages than
// -rate-burst within 10 s).
const refusalWindow = 10 * time.Second

// limiter is one connection's rate limit: a token bucket of RateLimit per
// second with RateBurst tokens, and a count of the messages it refused
// over the last refusalWindow, in one-second buckets: the refusals of the
// current second and of the nine before it. A client over the limit is
// closed once that count passes RateBurst, whether it floods in one burst
// or sends steadily faster than the limit (every refill lets a message
// through, so counting refusals "in a row" would never close it).
//
// A limiter belongs to one session and is used only while handling that
// connection's messages, which netloop serialises.
type limiter struct {
	bucket *rate.Limiter
	burst  int
	// window is created at the first refusal: a client within the limit,
	// nearly every one, carries no buckets (72 bytes per idle connection).
	window *refusals
}

// refusals counts refused messages in one-second buckets.
type refusals struct {
	start   time.Time // origin of the buckets: the first refusal
	last    int64     // the second of the last refusal, since start
	refused [refusalWindow / time.Second]uint32
}

func newLimiter(cfg *Config) *limiter {
	return &limiter{bucket: rate.NewLimiter(rate.Limit(cfg.RateLimit), cfg.RateBurst), burst: cfg.RateBurst}
}

// allow takes a token for one message. When there is none it counts a
// refusal and reports abuse when the refusals in the window pass burst.
func (l *limiter) allow(now time.Time) (ok, abuse bool) {
	if l.bucket.AllowN(now, 1) {
		return true, false
	}
	if l.window == nil {
		l.window = &refusals{start: now}
	}
	w := l.window
	sec := int64(now.Sub(w.start) / time.Second)
	n := int64(len(w.refused))
	if sec-w.last >= n {
		clear(w.refused[:])
	} else {
		for s := w.last + 1; s <= sec; s++ {
			w.refused[s%n] = 0 // seconds that passed without a refusal
		}
	}
	w.last = sec
	w.refused[sec%n]++
	var total int
	for _, r := range w.refused {
		total += int(r)
	}
	return false, total > l.burst
}
