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
	bucket  *rate.Limiter
	burst   int
	start   time.Time // origin of the one-second buckets
	last    int64     // the second of the last refusal, since start
	refused [refusalWindow / time.Second]uint32
}

func newLimiter(cfg *Config, now time.Time) *limiter {
	return &limiter{bucket: rate.NewLimiter(rate.Limit(cfg.RateLimit), cfg.RateBurst), burst: cfg.RateBurst, start: now}
}

// allow takes a token for one message. When there is none it counts a
// refusal and reports abuse when the refusals in the window pass burst.
func (l *limiter) allow(now time.Time) (ok, abuse bool) {
	if l.bucket.AllowN(now, 1) {
		return true, false
	}
	sec := int64(now.Sub(l.start) / time.Second)
	n := int64(len(l.refused))
	if sec-l.last >= n {
		clear(l.refused[:])
	} else {
		for s := l.last + 1; s <= sec; s++ {
			l.refused[s%n] = 0 // seconds that passed without a refusal
		}
	}
	l.last = sec
	l.refused[sec%n]++
	var total int
	for _, r := range l.refused {
		total += int(r)
	}
	return false, total > l.burst
}
