package loadgen_test

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/edgehub/edgehub/bench/loadgen"
	"github.com/edgehub/edgehub/cmd/edgehub/edgehubtest"
	"github.com/edgehub/edgehub/fanout/redistest"
)

// Two nodes on one real Redis: subscribers dialed over both, publishes on
// the first, so half the deliveries cross Redis; the cost is both nodes'.
func TestFanoutOverFleet(t *testing.T) {
	skipShort(t)
	redis := redistest.Start(t)
	a := edgehubtest.Start(t, "-redis", redis.URL(), "-node-id", "a")
	b := edgehubtest.Start(t, "-redis", redis.URL(), "-node-id", "b")
	// 20 messages (10/s for 2 s) to 40 subscribers, 20 on each node.
	sum := runAgainst(t, a, loadgen.Config{
		Scenario: "fanout", Conns: 40, Rooms: 1, Rate: 10, Duration: 2 * time.Second,
		Spread: []string{b.WS}, PeerPIDs: []int{b.PID}, RedisAddr: redis.Addr,
	})
	d := sum.Delivery
	if d.Published != 20 || d.Expected != 800 || d.Received != 800 || d.Lost != 0 || d.Duplicates != 0 {
		t.Errorf("delivery = %+v", d)
	}
	if d.RedisCPUSeconds <= 0 || d.RedisUsPerPublish <= 0 {
		t.Errorf("Redis CPU not measured: %+v", d)
	}
	// Both nodes' /metrics are summed: each wrote its own 20 x 20.
	if sum.Server.MessagesOut < 800 || sum.Server.ConnsActiveAfter != 40 {
		t.Errorf("server = %+v", sum.Server)
	}
}

// A listener loader held by the start file counts what another loader
// publishes, with no warm-up on either.
func TestListenerWaitsForStart(t *testing.T) {
	skipShort(t)
	redis := redistest.Start(t)
	a := edgehubtest.Start(t, "-redis", redis.URL(), "-node-id", "a")
	b := edgehubtest.Start(t, "-redis", redis.URL(), "-node-id", "b")
	dir := t.TempDir()
	start := dir + "/start"
	listener := make(chan loadgen.Summary, 1)
	go func() {
		sum, err := loadgen.Run(context.Background(), loadgen.Config{
			Scenario: "fanout", URL: b.WS, Conns: 30, Rooms: 3, ExpectPerRoom: 2,
			Duration: 20 * time.Second, ReadyFile: dir + "/ready-b", StartFile: start,
		})
		if err != nil {
			t.Error(err)
		}
		listener <- sum
	}()
	waitFile(t, dir+"/ready-b")
	publisher := make(chan loadgen.Summary, 1)
	go func() {
		// 6 publishes (at 0, 250, ..., 1250 ms): 2 to each of the 3 rooms, once started.
		sum, err := loadgen.Run(context.Background(), loadgen.Config{
			Scenario: "fanout", URL: a.WS, Conns: 3, Rooms: 3, Rate: 4, Duration: 1500 * time.Millisecond,
			ReadyFile: dir + "/ready-a", StartFile: start,
		})
		if err != nil {
			t.Error(err)
		}
		publisher <- sum
	}()
	waitFile(t, dir+"/ready-a")
	touch(t, start)
	p, l := (<-publisher).Delivery, (<-listener).Delivery
	if p.Published != 6 || p.Expected != 6 || p.Lost != 0 {
		t.Errorf("publisher delivery = %+v", p)
	}
	if l.Published != 6 || l.Expected != 60 || l.Received != 60 || l.Lost != 0 || l.Duplicates != 0 || l.Latency.Count != 60 {
		t.Errorf("listener delivery = %+v", l)
	}
}

func TestPublishOverRedis(t *testing.T) {
	skipShort(t)
	redis := redistest.Start(t)
	node := edgehubtest.Start(t, "-redis", redis.URL(), "-rate-limit", "100000", "-rate-burst", "100000")
	sum := runAgainst(t, node, loadgen.Config{
		Scenario: "publish", Conns: 4, Duration: time.Second, RedisAddr: redis.Addr,
	})
	p := sum.Publish
	if p == nil || p.Acks == 0 || p.Errors != 0 || p.Ack.Count != p.Acks || p.AcksPerSec <= 0 || p.RedisUsPerPublish <= 0 {
		t.Fatalf("publish = %+v", p)
	}
	// Acked messages are in the room's (capped) history stream.
	n, err := strconv.ParseInt(redis.MustDo("XLEN", "eh:{r0}:hist"), 10, 64)
	if err != nil || n <= 0 || n > p.Acks {
		t.Errorf("history holds %d (%v) for %d acks", n, err, p.Acks)
	}
}

// waitFile waits (boundedly) for a loader's ready file.
func waitFile(t *testing.T, path string) {
	t.Helper()
	for range 600 {
		if _, err := os.Stat(path); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s never appeared", path)
}

func touch(t *testing.T, path string) {
	t.Helper()
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
}
