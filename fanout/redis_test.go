package fanout

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgehub/edgehub/fanout/redistest"
)

func skipShort(t *testing.T) {
	if testing.Short() {
		t.Skip("Redis in -short")
	}
}

// publisher publishes to room steadily until stopped and keeps the
// offsets that were acknowledged.
type publisher struct {
	mu    sync.Mutex
	acked []uint64
	fails int
	stop  chan struct{}
	done  chan struct{}
}

func startPublisher(b Bus, room string, every time.Duration) *publisher {
	p := &publisher{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for i := 0; ; i++ {
			select {
			case <-p.stop:
				return
			case <-time.After(every):
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			off, err := b.Publish(ctx, room, "pub", fmt.Appendf(nil, `{"i":%d}`, i))
			cancel()
			p.mu.Lock()
			if err == nil {
				p.acked = append(p.acked, off)
			} else {
				p.fails++
			}
			p.mu.Unlock()
		}
	}()
	return p
}

func (p *publisher) halt() ([]uint64, int) {
	close(p.stop)
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.acked, p.fails
}

// checkAckedDelivered: every acked offset was delivered, nothing twice,
// in order (a publish whose reply was lost may be delivered unacked).
func checkAckedDelivered(t *testing.T, rec *busRecorder, room string, acked []uint64) {
	t.Helper()
	if len(acked) == 0 {
		t.Fatal("nothing was acknowledged")
	}
	last := slices.Max(acked)
	rec.waitFor(t, fmt.Sprintf("offset %d delivered", last), func() bool {
		got := rec.offsets(room)
		return len(got) > 0 && got[len(got)-1] >= last
	})
	got := rec.offsets(room)
	for i := 1; i < len(got); i++ {
		if got[i] != got[i-1]+1 {
			t.Fatalf("deliveries %d then %d: a gap, a duplicate or out of order", got[i-1], got[i])
		}
	}
	for _, a := range acked {
		if _, found := slices.BinarySearch(got, a); !found {
			t.Fatalf("acknowledged offset %d never delivered", a)
		}
	}
}

// Two nodes on one Redis: what one publishes, the other delivers.
func twoNodes(t *testing.T, url string) (pubNode Bus, subNode Bus, rec *busRecorder) {
	prefix := testPrefix(t)
	rec = newBusRecorder()
	subNode = redisBusPrefix(t, url, rec, 0, prefix)
	pubNode = redisBusPrefix(t, url, newBusRecorder(), 0, prefix)
	return pubNode, subNode, rec
}

// Redis kills every pub/sub connection twice while a room publishes: the
// node resubscribes and fills what it lost; publishes are not disturbed
// (they run on their own connections).
func TestRedisLostSubscriptions(t *testing.T) {
	skipShort(t)
	srv := redistest.Start(t)
	prefix := testPrefix(t)
	rec := newBusRecorder()
	sub, err := NewRedis(RedisConfig{URLs: srv.URL(), Prefix: prefix, NodeID: "sub"}, rec)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	pub, err := NewRedis(RedisConfig{URLs: srv.URL(), Prefix: prefix, NodeID: "pub"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	attach(t, sub, "r", nil)
	p := startPublisher(pub, "r", 2*time.Millisecond)
	for range 2 {
		time.Sleep(300 * time.Millisecond)
		if n := srv.MustDo("CLIENT", "KILL", "TYPE", "pubsub"); n == "0" {
			t.Fatal("CLIENT KILL TYPE pubsub killed no connection")
		}
	}
	time.Sleep(300 * time.Millisecond)
	acked, fails := p.halt()
	t.Logf("LOSTSUBS acked=%d failed=%d gap_filled=%d", len(acked), fails, sub.(*syncBus).Stats().GapFilled)
	if fails > 0 {
		t.Errorf("%d publishes failed while only pub/sub connections were killed", fails)
	}
	checkAckedDelivered(t, rec, "r", acked)
	if rs := sub.(*syncBus).broker.(*redisBroker).metrics.shards[0].resubscribes.Get(); rs < 2 {
		t.Fatalf("%d resubscribes counted, want >= 2", rs)
	}
}

// kill -9 of Redis while a room publishes, then a restart on the same port
// with its AOF: every acknowledged message reaches the member once, in
// order.
func TestRedisFailover(t *testing.T) {
	skipShort(t)
	srv := redistest.Start(t)
	pub, sub, rec := twoNodes(t, srv.URL())
	attach(t, sub, "r", nil)
	p := startPublisher(pub, "r", 2*time.Millisecond)
	time.Sleep(300 * time.Millisecond)
	srv.Kill()
	time.Sleep(500 * time.Millisecond)
	srv.Restart()
	time.Sleep(1500 * time.Millisecond)
	acked, fails := p.halt()
	t.Logf("FAILOVER acked=%d failed_during_outage=%d delivered=%d", len(acked), fails, len(rec.offsets("r")))
	if fails == 0 {
		t.Fatal("no publish failed while Redis was down: the outage did not happen")
	}
	checkAckedDelivered(t, rec, "r", acked)
}

// Two Redis servers as shards: rooms land on both; with one down, only its
// rooms are unavailable, and they come back with it.
func TestRedisSharding(t *testing.T) {
	skipShort(t)
	a, b := redistest.Start(t), redistest.Start(t)
	rec := newBusRecorder()
	prefix := testPrefix(t)
	bus := redisBusPrefix(t, a.URL()+","+b.URL(), rec, 0, prefix)
	br := bus.(*syncBus).broker.(*redisBroker)
	var onA, onB []string
	for i := range 40 {
		room := "room" + strconv.Itoa(i)
		if br.shardOf(room) == br.shards[0] {
			onA = append(onA, room)
		} else {
			onB = append(onB, room)
		}
		attach(t, bus, room, nil)
		publishN(t, bus, room, 1)
	}
	if len(onA) == 0 || len(onB) == 0 {
		t.Fatalf("rooms on shard A: %d, on B: %d: both must hold some", len(onA), len(onB))
	}
	if keys := a.MustDo("KEYS", prefix+":*:hist"); strings.Count(keys, "\n")+1 != len(onA) {
		t.Fatalf("shard A holds %q, want %d histories", keys, len(onA))
	}
	b.Kill()
	ctx := context.Background()
	if _, err := bus.Publish(ctx, onB[0], "x", []byte("1")); err == nil {
		t.Fatal("publish to a room of the dead shard succeeded")
	}
	if err := bus.Ready(ctx); err == nil {
		t.Fatal("Ready with a dead shard")
	}
	if _, err := bus.Publish(ctx, onA[0], "x", []byte("1")); err != nil {
		t.Fatalf("a room of the live shard: %v", err)
	}
	b.Restart()
	rec.waitFor(t, "shard B back", func() bool {
		_, err := bus.Publish(ctx, onB[0], "x", []byte("1"))
		return err == nil
	})
	rec.waitFor(t, "shard B's room delivered again", func() bool { return len(rec.offsets(onB[0])) >= 2 })
	if err := bus.Ready(ctx); err != nil {
		t.Fatal(err)
	}
}

// On a Redis Cluster, rooms spread over the masters with sharded pub/sub,
// and every member gets every message once, in order.
func TestRedisCluster(t *testing.T) {
	skipShort(t)
	c := redistest.StartCluster(t, 3)
	pub, sub, rec := twoNodes(t, c.URL())
	const rooms, n = 30, 20
	for i := range rooms {
		attach(t, sub, "c"+strconv.Itoa(i), nil)
	}
	for i := range rooms {
		publishN(t, pub, "c"+strconv.Itoa(i), n)
	}
	for i := range rooms {
		rec.wantOffsets(t, "c"+strconv.Itoa(i), n)
	}
	used := 0
	for _, s := range c.Servers {
		if out := s.MustDo("DBSIZE"); out != "0" {
			used++
		}
	}
	if used < 2 {
		t.Fatalf("rooms landed on %d of 3 masters", used)
	}
}

// A room's meta (its epoch) is read through the client-side cache: a room
// joined again and again costs no meta round trip, and when the history is
// lost (FLUSHALL) every node sees the new epoch through invalidation.
func TestRedisClientSideCache(t *testing.T) {
	skipShort(t)
	srv := redistest.Start(t)
	pub, sub, _ := twoNodes(t, srv.URL())
	publishN(t, pub, "hot", 1)
	epoch := attach(t, sub, "hot", nil).Latest.Epoch
	sub.Detach("hot")
	sm := sub.(*syncBus).broker.(*redisBroker).metrics.shards[0]
	for range 20 {
		waitDetached(t, sub, "hot")
		if h := attach(t, sub, "hot", nil); h.Latest.Epoch != epoch {
			t.Fatalf("epoch %q, want %q", h.Latest.Epoch, epoch)
		}
		sub.Detach("hot")
	}
	hits := sm.cacheHits.Get()
	t.Logf("CACHE hits=%d misses=%d", hits, sm.cacheMisses.Get())
	if hits < 19 {
		t.Fatalf("%d cache hits in 20 first joins of a hot room, want >= 19", hits)
	}
	srv.MustDo("FLUSHALL")
	publishN(t, pub, "hot", 1)
	waitDetached(t, sub, "hot")
	var fresh string
	rec := newBusRecorder()
	rec.waitFor(t, "the new epoch seen after invalidation", func() bool {
		fresh = attach(t, sub, "hot", nil).Latest.Epoch
		sub.Detach("hot")
		waitDetached(t, sub, "hot")
		return fresh != epoch
	})
}

func waitDetached(t *testing.T, b Bus, room string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for b.(*syncBus).attached(room) {
		if time.Now().After(deadline) {
			t.Fatal("room still attached")
		}
		time.Sleep(time.Millisecond)
	}
}

// One subscription per room per node, whatever the number of members.
func TestRedisOneSubscriptionPerRoom(t *testing.T) {
	skipShort(t)
	srv := redistest.Start(t)
	prefix := testPrefix(t)
	bus := redisBusPrefix(t, srv.URL(), newBusRecorder(), 0, prefix)
	for range 50 {
		attach(t, bus, "r", nil)
	}
	ch := prefix + ":{r}:ch"
	if out := srv.MustDo("PUBSUB", "SHARDNUMSUB", ch); out != ch+"\n1" {
		t.Fatalf("PUBSUB SHARDNUMSUB = %q, want one subscriber", out)
	}
	for range 50 {
		bus.Detach("r")
	}
	waitDetached(t, bus, "r")
	deadline := time.Now().Add(10 * time.Second)
	for srv.MustDo("PUBSUB", "SHARDNUMSUB", ch) != ch+"\n0" {
		if time.Now().After(deadline) {
			t.Fatal("still subscribed after the last member left")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// After the history is lost (FLUSHALL), a join with a position of the old
// epoch is not recovered, even on a node whose live stream has not yet
// shown the loss.
func TestRedisLostHistoryIsNotRecovered(t *testing.T) {
	skipShort(t)
	srv := redistest.Start(t)
	pub, sub, rec := twoNodes(t, srv.URL())
	epoch := attach(t, sub, "r", nil).Latest.Epoch
	publishN(t, pub, "r", 3)
	rec.wantOffsets(t, "r", 3)
	for i := range 20 {
		srv.MustDo("FLUSHALL")
		publishN(t, pub, "r", 1)
		h := attach(t, sub, "r", &Position{Epoch: epoch, Offset: 3})
		sub.Detach("r")
		if h.Recovered || h.Latest.Epoch == epoch {
			t.Fatalf("round %d: after FLUSHALL a join at the old epoch got %+v", i, h)
		}
		epoch = h.Latest.Epoch
		publishN(t, pub, "r", 2)
	}
}
