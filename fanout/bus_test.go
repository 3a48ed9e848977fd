package fanout

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgehub/edgehub/fanout/redistest"
)

// busRecorder is a Receiver that keeps what it was given.
type busRecorder struct {
	mu        sync.Mutex
	msgs      map[string][]Message
	relayed   []string
	addressed []string
	changed   chan struct{}
}

func newBusRecorder() *busRecorder {
	return &busRecorder{msgs: make(map[string][]Message), changed: make(chan struct{}, 1)}
}

func (r *busRecorder) Deliver(m *Message) {
	r.mu.Lock()
	r.msgs[m.Room] = append(r.msgs[m.Room], *m)
	r.mu.Unlock()
	r.poke()
}

func (r *busRecorder) Relayed(room string, p []byte) {
	r.mu.Lock()
	r.relayed = append(r.relayed, room+" "+string(p))
	r.mu.Unlock()
	r.poke()
}

func (r *busRecorder) Addressed(p []byte) {
	r.mu.Lock()
	r.addressed = append(r.addressed, string(p))
	r.mu.Unlock()
	r.poke()
}

func (r *busRecorder) poke() {
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

func (r *busRecorder) offsets(room string) []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var o []uint64
	for _, m := range r.msgs[room] {
		o = append(o, m.Offset)
	}
	return o
}

// waitFor waits until cond holds, failing the test after a bound that keeps
// a broken bus from hanging it (it measures nothing).
func (r *busRecorder) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for !cond() {
		select {
		case <-r.changed:
		case <-time.After(20 * time.Millisecond):
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// wantOffsets checks that room got exactly 1..n, in order.
func (r *busRecorder) wantOffsets(t *testing.T, room string, n int) {
	t.Helper()
	r.waitFor(t, fmt.Sprintf("%d messages in %s", n, room), func() bool { return len(r.offsets(room)) >= n })
	got := r.offsets(room)
	for i, o := range got {
		if o != uint64(i+1) {
			t.Fatalf("%s: delivery %d has offset %d (got %v): duplicated, missed or out of order", room, i, o, got)
		}
	}
	if len(got) != n {
		t.Fatalf("%s: %d deliveries, want %d", room, len(got), n)
	}
}

// eachBus runs f as a subtest for each kind of Bus (Redis ones are
// skipped in -short).
func eachBus(t *testing.T, f func(t *testing.T, name string, mk busMaker)) {
	for name, mk := range kinds(t) {
		t.Run(name, func(t *testing.T) {
			if name != "memory" && testing.Short() {
				t.Skip("Redis in -short")
			}
			f(t, name, mk)
		})
	}
}

// busNodeID is the node id a test Bus was made with.
func busNodeID(b Bus) string {
	if rb, ok := b.(*syncBus).broker.(*redisBroker); ok {
		return rb.cfg.NodeID
	}
	return "n1"
}

// busMaker builds a Bus of one kind for a test.
type busMaker func(t *testing.T, recv Receiver, size int) Bus

// kinds are the Bus implementations every contract test runs against.
func kinds(t *testing.T) map[string]busMaker {
	return map[string]busMaker{
		"memory": func(t *testing.T, recv Receiver, size int) Bus {
			b := NewMemory(MemoryConfig{NodeID: "n1", HistorySize: size}, recv)
			t.Cleanup(func() { b.Close() })
			return b
		},
		"redis": func(t *testing.T, recv Receiver, size int) Bus {
			return redisBus(t, redistest.Start(t).URL(), recv, size)
		},
	}
}

var prefixSeq struct {
	sync.Mutex
	n int
}

// redisBus is a Redis bus on urls with a key prefix of its own.
func redisBus(t *testing.T, urls string, recv Receiver, size int) Bus {
	t.Helper()
	return redisBusPrefix(t, urls, recv, size, testPrefix(t))
}

func testPrefix(t *testing.T) string {
	prefixSeq.Lock()
	prefixSeq.n++
	n := prefixSeq.n
	prefixSeq.Unlock()
	return fmt.Sprintf("t%d%s", n, strings.NewReplacer("/", "", "_", "").Replace(t.Name())[:min(12, len(t.Name()))])
}

func redisBusPrefix(t *testing.T, urls string, recv Receiver, size int, prefix string) Bus {
	t.Helper()
	b, err := NewRedis(RedisConfig{URLs: urls, Prefix: prefix, NodeID: "n-" + prefix, HistorySize: size}, recv)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func publishN(t *testing.T, b Bus, room string, n int) {
	t.Helper()
	for i := range n {
		if _, err := b.Publish(context.Background(), room, "tester", fmt.Appendf(nil, `{"n":%d}`, i)); err != nil {
			t.Fatal(err)
		}
	}
}

func attach(t *testing.T, b Bus, room string, since *Position) History {
	t.Helper()
	var h History
	err := b.Attach(context.Background(), room, since, func(got History) {
		h = got
		h.Missed = slices.Clone(got.Missed) // valid only during the callback
	})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestBusOffsetsAndDelivery(t *testing.T) {
	eachBus(t, func(t *testing.T, name string, mk busMaker) {
		rec := newBusRecorder()
		b := mk(t, rec, 0)
		attach(t, b, "r", nil)
		data := ` {"keep" : [1, "é", {"x":null}]} `
		for want := uint64(1); want <= 3; want++ {
			off, err := b.Publish(context.Background(), "r", "alice", []byte(data))
			if err != nil || off != want {
				t.Fatalf("Publish = %d, %v; want offset %d", off, err, want)
			}
		}
		rec.wantOffsets(t, "r", 3)
		rec.mu.Lock()
		m := rec.msgs["r"][1]
		rec.mu.Unlock()
		text := string(m.Text)
		if m.Text == nil { // the memory bus leaves the frame to the node
			text = string(m.Data)
		}
		if !strings.Contains(text, data) {
			t.Fatalf("data not kept byte for byte: %q", text)
		}
		if off, _ := b.Publish(context.Background(), "other", "bob", []byte("1")); off != 1 {
			t.Fatalf("a second room starts at offset %d, want 1", off)
		}
		if len(rec.offsets("other")) != 0 {
			t.Fatal("a room without local members was delivered")
		}
	})
}

func TestBusRecovery(t *testing.T) {
	eachBus(t, func(t *testing.T, name string, mk busMaker) {
		rec := newBusRecorder()
		b := mk(t, rec, 5)
		fresh := attach(t, b, "r", nil)
		if fresh.Latest.Offset != 0 || fresh.Latest.Epoch == "" || fresh.Recovered {
			t.Fatalf("new room: %+v", fresh)
		}
		epoch := fresh.Latest.Epoch
		publishN(t, b, "r", 8) // offsets 1..8, history keeps 4..8
		rec.wantOffsets(t, "r", 8)
		tcs := []struct {
			name      string
			since     *Position
			recovered bool
			missed    []uint64
		}{
			{"no position", nil, false, nil},
			{"caught up", &Position{epoch, 8}, true, nil},
			{"missed two", &Position{epoch, 6}, true, []uint64{7, 8}},
			{"oldest kept is next", &Position{epoch, 3}, true, []uint64{4, 5, 6, 7, 8}},
			{"trimmed past", &Position{epoch, 2}, false, nil},
			{"other epoch", &Position{"old", 6}, false, nil},
			{"from the future", &Position{epoch, 9}, false, nil},
		}
		for _, tc := range tcs {
			h := attach(t, b, "r", tc.since)
			b.Detach("r")
			var got []uint64
			for _, msg := range h.Missed {
				got = append(got, msg.Offset)
			}
			if h.Recovered != tc.recovered || !slices.Equal(got, tc.missed) || h.Latest != (Position{epoch, 8}) {
				t.Fatalf("%s: recovered=%v missed=%v latest=%+v; want %v %v", tc.name, h.Recovered, got, h.Latest, tc.recovered, tc.missed)
			}
		}
	})
}

// A join whose replay would pass RecoveryMax is not recovered, rather than
// flood the connection.
func TestBusRecoveryMax(t *testing.T) {
	rec := newBusRecorder()
	b := NewMemory(MemoryConfig{RecoveryMax: 3, RecoveryBytes: 1000}, rec)
	defer b.Close()
	epoch := attach(t, b, "r", nil).Latest.Epoch
	publishN(t, b, "r", 5)
	if h := attach(t, b, "r", &Position{epoch, 2}); !h.Recovered || len(h.Missed) != 3 {
		t.Fatalf("3 missed with RecoveryMax 3: recovered=%v missed=%d", h.Recovered, len(h.Missed))
	}
	if h := attach(t, b, "r", &Position{epoch, 1}); h.Recovered || len(h.Missed) != 0 {
		t.Fatalf("4 missed with RecoveryMax 3: recovered=%v missed=%d", h.Recovered, len(h.Missed))
	}
	bigEpoch := attach(t, b, "big", nil).Latest.Epoch
	for range 2 {
		if _, err := b.Publish(context.Background(), "big", "x", []byte(`"`+strings.Repeat("x", 600)+`"`)); err != nil {
			t.Fatal(err)
		}
	}
	if h := attach(t, b, "big", &Position{bigEpoch, 0}); h.Recovered {
		t.Fatal("1,200 bytes of replay passed a 1,000-byte budget")
	}
	if h := attach(t, b, "big", &Position{bigEpoch, 1}); !h.Recovered || len(h.Missed) != 1 {
		t.Fatal("600 bytes of replay within a 1,000-byte budget was refused")
	}
}

func TestBusRelayAndSendToNode(t *testing.T) {
	eachBus(t, func(t *testing.T, name string, mk busMaker) {
		rec := newBusRecorder()
		b := mk(t, rec, 0)
		ctx := context.Background()
		if err := b.Relay(ctx, "nobody-here", []byte(`{"x":1}`)); err != nil {
			t.Fatal(err)
		}
		attach(t, b, "r", nil)
		if err := b.Relay(ctx, "r", []byte(`{"type":"ai-chunk"}`)); err != nil {
			t.Fatal(err)
		}
		self := busNodeID(b)
		if err := b.SendToNode(ctx, self, []byte(`{"kind":"x"}`)); err != nil {
			t.Fatal(err)
		}
		rec.waitFor(t, "relayed and addressed", func() bool {
			rec.mu.Lock()
			defer rec.mu.Unlock()
			return len(rec.relayed) == 1 && len(rec.addressed) == 1
		})
		rec.mu.Lock()
		defer rec.mu.Unlock()
		if rec.relayed[0] != `r {"type":"ai-chunk"}` || rec.addressed[0] != `{"kind":"x"}` {
			t.Fatalf("relayed %q, addressed %q", rec.relayed, rec.addressed)
		}
	})
}

func TestBusFleetAndRevoke(t *testing.T) {
	eachBus(t, func(t *testing.T, name string, mk busMaker) {
		rec := newBusRecorder()
		b := mk(t, rec, 0)
		ctx := context.Background()
		id := busNodeID(b)
		if err := b.Register(ctx, NodeInfo{ID: id, Conns: 7}); err != nil {
			t.Fatal(err)
		}
		nodes, err := b.Nodes(ctx)
		if err != nil || len(nodes) != 1 || nodes[0].ID != id || nodes[0].Conns != 7 {
			t.Fatalf("Nodes = %+v, %v", nodes, err)
		}
		if r, err := b.Revoked(ctx, "j1"); err != nil || r {
			t.Fatalf("Revoked before Revoke = %v, %v", r, err)
		}
		if err := b.Revoke(ctx, "j1", time.Minute); err != nil {
			t.Fatal(err)
		}
		rec.waitFor(t, "revoke sent to the node", func() bool {
			rec.mu.Lock()
			defer rec.mu.Unlock()
			return len(rec.addressed) == 1
		})
		rec.waitFor(t, "the token refused", func() bool {
			r, err := b.Revoked(ctx, "j1")
			return err == nil && r
		})
		if rec.addressed[0] != `{"kind":"revoke","jti":"j1"}` {
			t.Fatalf("addressed %q", rec.addressed)
		}
	})
}

// Detach is counted: the room stays subscribed while any member stays,
// and is forgotten once the last one left.
func TestBusDetachCounts(t *testing.T) {
	eachBus(t, func(t *testing.T, name string, mk busMaker) {
		rec := newBusRecorder()
		b := mk(t, rec, 0)
		sb := b.(*syncBus)
		attach(t, b, "r", nil)
		attach(t, b, "r", nil)
		b.Detach("r")
		publishN(t, b, "r", 1)
		rec.wantOffsets(t, "r", 1)
		b.Detach("r")
		rec.waitFor(t, "the room forgotten", func() bool { return !sb.attached("r") })
		publishN(t, b, "r", 1)
		attach(t, b, "r", nil)
		publishN(t, b, "r", 1)
		rec.waitFor(t, "offset 3", func() bool { return len(rec.offsets("r")) == 2 })
		if got := rec.offsets("r"); !slices.Equal(got, []uint64{1, 3}) {
			t.Fatalf("delivered %v, want [1 3]: offset 2 was published with no member", got)
		}
	})
}
