package node

import (
	"math"
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

// rateState is a connection's rate limit as its session holds it. A
// bucket that starts with RateBurst tokens cannot be empty before the
// connection has sent RateBurst messages, so until then only their count
// and the first one's time are kept, and an idle connection (a join, a
// few messages) never carries a bucket (112 bytes). The bucket is made at
// the message after them, as if they had all come at the first one's time:
// that leaves it at least as full as a bucket made at the upgrade would be
// (never emptier: a client within the limit is not refused for the delay),
// and fuller only by what such a bucket lost to being full between them.
type rateState struct {
	first   int64  // UnixNano of the first message
	early   uint32 // messages before the bucket
	limiter *limiter
}

// allow applies the limit to one message at now.
func (r *rateState) allow(cfg *Config, now time.Time) (ok, abuse bool) {
	if r.limiter == nil {
		if r.early < uint32(min(cfg.RateBurst, math.MaxUint32)) {
			if r.early == 0 {
				r.first = now.UnixNano()
			}
			r.early++
			return true, false
		}
		r.limiter = newLimiter(cfg)
		r.limiter.bucket.AllowN(time.Unix(0, r.first), int(r.early))
	}
	return r.limiter.allow(now)
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
