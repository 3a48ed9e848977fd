package loadgen

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// runFanout joins Conns subscribers to Rooms rooms, then publishes over
// /api/publish at Rate messages per second in total (rooms in turn) for
// Duration, each data value stamped with its send time: deliveries per
// second, loss, latency and the node's CPU per million deliveries. With
// ExpectPerRoom it only listens for another loader's publishes.
func (s *session) runFanout(ctx context.Context) Summary {
	sum := s.connectAndJoin(ctx)
	members := s.clientsByRoom()

	pub := &httpPublisher{
		url:    s.cfg.httpBase() + "/api/publish",
		apiKey: s.cfg.APIKey,
		client: &http.Client{
			Timeout:   10 * time.Second,
			Transport: &http.Transport{MaxIdleConnsPerHost: maxInFlight, MaxConnsPerHost: maxInFlight},
		},
		size:      s.cfg.Size,
		sem:       make(chan struct{}, maxInFlight),
		published: make([]atomic.Int64, s.cfg.Rooms),
	}
	// Deliveries count from the start, or from before waiting for it: a
	// loader that only listens may get the first messages before it
	// notices the start file.
	received0 := s.received.Load()
	if s.cfg.StartFile != "" {
		s.awaitStart(ctx)
	} else if s.cfg.ExpectPerRoom == 0 {
		s.warmUp(ctx, pub, members)
		received0 = s.received.Load() // the warm-up's messages are not measured
	}
	del := &DeliveryStats{}
	sum.Delivery = del
	publish := func(ctx context.Context) []int64 {
		del.PublishLagMaxMs = pace(ctx, s.cfg.Rate, s.cfg.Duration, pub.publish).Seconds() * 1000
		pub.inFlight.Wait()
		del.PublishErrors = pub.errors.Load()
		out := make([]int64, len(pub.published))
		for i := range pub.published {
			out[i] = pub.published[i].Load()
		}
		return out
	}
	if s.cfg.ExpectPerRoom > 0 {
		publish = s.listen(members, received0)
	}
	sum.Server = s.measureDelivery(ctx, del, members, received0, publish)
	return sum
}

// listen is the publish phase of a listener: it waits up to Duration for
// ExpectPerRoom messages in every room (another loader publishes them) and
// returns that count per room as what was published.
func (s *session) listen(members []int64, received0 int64) func(ctx context.Context) []int64 {
	return func(ctx context.Context) []int64 {
		var want int64
		out := make([]int64, len(members))
		for r, n := range members {
			out[r] = int64(s.cfg.ExpectPerRoom)
			want += out[r] * n
		}
		s.waitFor(ctx, s.cfg.Duration, func() bool { return s.received.Load()-received0 >= want })
		return out
	}
}

// maxStartWait bounds awaitStart: long enough for several loaders sharing
// one core to dial 100,000 connections, short enough that a loader whose
// script died does not hold its sockets for long.
const maxStartWait = 10 * time.Minute

// awaitStart creates ReadyFile, then waits for StartFile, so that several
// loaders hold all their connections before any of them publishes. A start
// that never comes (maxStartWait) is counted, and the run goes on, so it
// stays bounded.
func (s *session) awaitStart(ctx context.Context) {
	s.phase.Store("ready")
	ready := fmt.Sprintf("%d\n", s.joined.Load())
	if err := os.WriteFile(s.cfg.ReadyFile, []byte(ready), 0o644); err != nil {
		s.count("ready file: " + err.Error())
	}
	started := s.waitFor(ctx, maxStartWait, func() bool {
		_, err := os.Stat(s.cfg.StartFile)
		return err == nil
	})
	if !started {
		s.count("start file never appeared")
	}
}

// connectAndJoin opens Conns connections that each join a room and waits
// for the joins: the set-up of fanout and rooms.
func (s *session) connectAndJoin(ctx context.Context) Summary {
	var sum Summary
	sum.Connections.Target = int64(s.cfg.Conns)
	phase := s.measureLoader("connect")
	sum.Connections.ConnectSeconds = s.connect(ctx, s.cfg.Conns, s.joinRoom).Seconds()
	s.waitJoined(ctx)
	// Only the connect phase's CPU is checked: upgrade latency is not what
	// fanout and rooms measure.
	phase.end(s, 0, "")
	return sum
}

// measureDelivery runs publish (which returns the successful publishes per
// room), waits up to Drain for the deliveries still due, and fills del and
// the server's cost over that window; deliveries count from the received
// count received0.
func (s *session) measureDelivery(ctx context.Context, del *DeliveryStats, members []int64, received0 int64,
	publish func(ctx context.Context) []int64) *ServerStats {
	before := s.probe.sample(ctx)
	cpu := s.probe.cpu()
	redis0, redisErr := s.redisCPU()
	phase := s.measureLoader("publish")
	t0 := time.Now()

	published := publish(ctx)
	for r, n := range published {
		del.Published += n
		del.Expected += n * members[r]
	}
	s.phase.Store("drain")
	s.waitFor(ctx, s.cfg.Drain, func() bool { return s.received.Load()-received0 >= del.Expected })
	del.Latency = s.latency.summary()
	loaderCPU := phase.end(s, del.Latency.P99Ms, "delivery")

	srv := s.probe.stats(before, s.probe.sample(ctx))
	if cpu != nil {
		used, _ := cpu.stop()
		srv.CPUSeconds = used.Seconds()
	}
	if redis1, err := s.redisCPU(); redisErr == nil && err == nil && s.cfg.RedisAddr != "" {
		del.RedisCPUSeconds = (redis1 - redis0).Seconds()
		if del.Published > 0 {
			del.RedisUsPerPublish = del.RedisCPUSeconds * 1e6 / float64(del.Published)
		}
	}
	del.Received = s.received.Load() - received0
	del.Lost = max(del.Expected-del.Received, 0)
	del.Duplicates = s.duplicates.Load()
	del.Acks = s.acks.Load()
	if last := s.lastDelivery.Load(); last > t0.UnixNano() {
		del.PerSec = perSec(del.Received, time.Duration(last-t0.UnixNano()))
	}
	if del.Received > 0 && srv.CPUSeconds > 0 {
		del.CPUSecondsPerMillion = srv.CPUSeconds / (float64(del.Received) / 1e6)
	}
	if del.Received > 0 && del.Published > 0 {
		perDelivery := loaderCPU / time.Duration(del.Received)
		members := del.Expected / del.Published
		del.LoaderUsPerDelivery = float64(perDelivery) / float64(time.Microsecond)
		del.LoaderMsPerMessage = float64(perDelivery*time.Duration(members)) / float64(time.Millisecond) / float64(s.cores)
		s.noteBurstCost(del.LoaderMsPerMessage, del.Latency.P99Ms, members)
	}
	return srv
}

// redisCPU reads Redis's CPU (RedisAddr), counting a failure; without a
// RedisAddr it is zero.
func (s *session) redisCPU() (time.Duration, error) {
	if s.cfg.RedisAddr == "" {
		return 0, nil
	}
	d, err := redisCPU(s.cfg.RedisAddr)
	if err != nil {
		s.count("redis INFO cpu: " + errorKind(err))
	}
	return d, err
}

// pace calls send(seq) at rate per second for d (seq = 0, 1, ...), on
// schedule rather than back to back, so a slow send delays the later ones
// only as long as it lasts. It returns how far behind schedule it fell.
func pace(ctx context.Context, rate float64, d time.Duration, send func(seq int64)) (maxLag time.Duration) {
	if rate <= 0 {
		return 0
	}
	interval := time.Duration(float64(time.Second) / rate)
	start := time.Now()
	for seq := int64(0); ctx.Err() == nil; seq++ {
		due := time.Duration(seq) * interval
		if due >= d {
			break
		}
		if wait := due - time.Since(start); wait > 0 {
			sleep(ctx, wait)
		} else {
			maxLag = max(maxLag, -wait)
		}
		send(seq)
	}
	return maxLag
}

// maxInFlight bounds the publisher's concurrent HTTP requests.
const maxInFlight = 16

// httpPublisher publishes stamped data over the node's HTTP API.
type httpPublisher struct {
	url       string
	apiKey    string
	client    *http.Client
	size      int
	sem       chan struct{}
	inFlight  sync.WaitGroup
	published []atomic.Int64 // successful publishes per room
	errors    atomic.Int64
}

// publish sends message seq to room seq%rooms without waiting for the
// answer, holding at most maxInFlight requests.
// warmUp publishes one message to every room and waits for its deliveries
// (up to the drain time), then forgets them: the first broadcast pays
// one-time costs on both sides (every connection's first queued frame on the
// node, first reads in the loader) that are not the steady state measured.
// The measured phase counts deliveries from its own start.
func (s *session) warmUp(ctx context.Context, pub *httpPublisher, members []int64) {
	s.phase.Store("warm-up")
	received := s.received.Load()
	var want int64
	for r := range members {
		pub.publish(int64(r))
		want += members[r]
	}
	pub.inFlight.Wait()
	s.waitFor(ctx, s.cfg.Drain, func() bool { return s.received.Load()-received >= want })
	for i := range pub.published {
		pub.published[i].Store(0)
	}
	pub.errors.Store(0)
	s.latency.reset()
}

func (p *httpPublisher) publish(seq int64) {
	p.sem <- struct{}{}
	room := int(seq % int64(len(p.published)))
	p.inFlight.Go(func() {
		defer func() { <-p.sem }()
		body := append([]byte(`{"room":"`), roomName(room)...)
		body = append(body, `","data":`...)
		body = appendStamp(body, time.Now().UnixNano(), seq, p.size)
		body = append(body, '}')
		req, err := http.NewRequest(http.MethodPost, p.url, bytes.NewReader(body))
		if err != nil {
			p.errors.Add(1)
			return
		}
		req.Header.Set("Content-Type", "application/json")
		if p.apiKey != "" {
			req.Header.Set("Authorization", "Bearer "+p.apiKey)
		}
		resp, err := p.client.Do(req)
		if err != nil {
			p.errors.Add(1)
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body) // so the connection is reused
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			p.errors.Add(1)
			return
		}
		p.published[room].Add(1)
	})
}
