package fanout

import (
	"context"
	"sync"
	"testing"
	"time"
)

// hookBroker is a memory broker with hooks between it and the sync layer:
// onRead runs before each history read, and lose decides which live
// messages never arrive (as when a subscription drops). It makes the
// interleavings the sync layer must survive happen on purpose, every run.
type hookBroker struct {
	*memBroker
	mu     sync.Mutex
	onRead func(after uint64, limit int)
	lose   func(m *Message) bool
}

func (h *hookBroker) read(ctx context.Context, room string, after uint64, limit int) ([]Message, Position, error) {
	h.mu.Lock()
	f := h.onRead
	h.mu.Unlock()
	if f != nil {
		f(after, limit)
	}
	return h.memBroker.read(ctx, room, after, limit)
}

func newHookBus(t *testing.T, recv Receiver) (*syncBus, *hookBroker) {
	mb := newMemBroker(MemoryConfig{NodeID: "n1"})
	hb := &hookBroker{memBroker: mb}
	sb := newSyncBus(hb, recv, mb.cfg.HistorySize, syncLimits{})
	mb.start(sb)
	mb.live = func(m *Message) {
		hb.mu.Lock()
		lose := hb.lose
		hb.mu.Unlock()
		if lose == nil || !lose(m) {
			sb.live(m)
		}
	}
	t.Cleanup(func() { sb.Close() })
	return sb, hb
}

// memberRecorder counts what one member of a room received, live or
// replayed, the way a node's member does: live deliveries reach it only
// once it joined inside Attach's callback.
type memberRecorder struct {
	mu     sync.Mutex
	joined bool
	got    []uint64
}

func (m *memberRecorder) Deliver(msg *Message) {
	m.mu.Lock()
	if m.joined {
		m.got = append(m.got, msg.Offset)
	}
	m.mu.Unlock()
}
func (m *memberRecorder) Relayed(string, []byte) {}
func (m *memberRecorder) Addressed([]byte)       {}

func (m *memberRecorder) join(h History) {
	m.mu.Lock()
	for _, msg := range h.Missed {
		m.got = append(m.got, msg.Offset)
	}
	m.joined = true
	m.mu.Unlock()
}

func (m *memberRecorder) check(t *testing.T, n int) {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.got) != n {
		t.Fatalf("member got %d messages, want %d: %v", len(m.got), n, m.got)
	}
	for i, o := range m.got {
		if o != uint64(i+1) {
			t.Fatalf("message %d has offset %d: duplicated, missed or out of order (%v)", i, o, m.got)
		}
	}
}

// A recovering join reads history while the room goes on: messages
// published before the read (in the history), during it (delivered live
// and in the history) and after it (delivered live only) each reach the
// member exactly once, in order, and the read holds up no delivery.
func TestSyncJoinWhileRoomPublishes(t *testing.T) {
	member := &memberRecorder{}
	sb, hb := newHookBus(t, member)
	ctx := context.Background()
	other := func(History) {}
	if err := sb.Attach(ctx, "r", nil, other); err != nil { // another member keeps the room live
		t.Fatal(err)
	}
	epoch := sb.lookup("r").epoch
	for range 3 {
		sb.Publish(ctx, "r", "a", []byte("1")) // 1..3: before the join
	}
	reads := 0
	hb.onRead = func(after uint64, limit int) {
		if limit == 0 {
			return
		}
		reads++
		// 4..6 are published and delivered while the join reads: the
		// room's lock is not held by the read, or this would deadlock.
		for range 3 {
			sb.Publish(ctx, "r", "a", []byte("1"))
		}
	}
	err := sb.Attach(ctx, "r", &Position{Epoch: epoch, Offset: 1}, func(h History) {
		if !h.Recovered || h.Latest.Offset != 6 {
			t.Errorf("recovered=%v latest=%d, want true and 6", h.Recovered, h.Latest.Offset)
		}
		// The member already holds offset 1.
		member.mu.Lock()
		member.got = append(member.got, 1)
		member.mu.Unlock()
		member.join(h)
	})
	if err != nil {
		t.Fatal(err)
	}
	if reads != 1 {
		t.Fatalf("the join read the history %d times, want 1: the interleaving did not happen", reads)
	}
	hb.onRead = nil
	for range 3 {
		sb.Publish(ctx, "r", "a", []byte("1")) // 7..9: after
	}
	member.check(t, 9)
}

// A lost live message is a gap: the next one that arrives skips ahead, and
// the room fills the gap from the history before delivering it.
func TestSyncFillsGapFromHistory(t *testing.T) {
	rec := newBusRecorder()
	sb, hb := newHookBus(t, rec)
	ctx := context.Background()
	if err := sb.Attach(ctx, "r", nil, func(History) {}); err != nil {
		t.Fatal(err)
	}
	hb.lose = func(m *Message) bool { return m.Offset == 2 || m.Offset == 3 }
	for range 5 {
		sb.Publish(ctx, "r", "a", []byte("1"))
	}
	rec.wantOffsets(t, "r", 5)
	// The fill reads on to the room's end, so what arrived live meanwhile
	// may come from the history too: at least the two lost ones.
	if st := sb.Stats(); st.GapFilled < 2 || st.Lost != 0 {
		t.Fatalf("stats %+v, want >= 2 gap-filled, 0 lost", st)
	}
}

// A subscription that comes back (resync) fills what was published while
// it was away, even when nothing is published after it.
func TestSyncResyncFillsTail(t *testing.T) {
	rec := newBusRecorder()
	sb, hb := newHookBus(t, rec)
	ctx := context.Background()
	if err := sb.Attach(ctx, "r", nil, func(History) {}); err != nil {
		t.Fatal(err)
	}
	sb.Publish(ctx, "r", "a", []byte("1"))
	hb.lose = func(*Message) bool { return true } // the subscription is gone
	sb.Publish(ctx, "r", "a", []byte("1"))
	sb.Publish(ctx, "r", "a", []byte("1"))
	hb.lose = nil
	if got := rec.offsets("r"); len(got) != 1 {
		t.Fatalf("delivered %v before the resync, want [1]", got)
	}
	sb.resync("r")
	rec.wantOffsets(t, "r", 3)
}

// Many members join and leave one room while it publishes: one that stays
// misses nothing, and at the end the room is subscribed exactly while a
// member is attached.
func TestSyncJoinLeaveRace(t *testing.T) {
	member := &memberRecorder{}
	sb, _ := newHookBus(t, member)
	ctx := context.Background()
	if err := sb.Attach(ctx, "r", nil, member.join); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := sb.Attach(ctx, "r", nil, func(History) {}); err != nil {
					t.Error(err)
					return
				}
				sb.Detach("r")
			}
		}()
	}
	const n = 2000
	for range n {
		sb.Publish(ctx, "r", "a", []byte("1"))
	}
	close(stop)
	wg.Wait()
	member.check(t, n)
	r := sb.lookup("r")
	r.mu.Lock()
	refs, subscribed := r.refs, r.subscribed
	r.mu.Unlock()
	if refs != 1 || !subscribed {
		t.Fatalf("refs=%d subscribed=%v with one member left, want 1 true", refs, subscribed)
	}
	sb.Detach("r")
	deadline := time.Now().Add(10 * time.Second)
	for sb.attached("r") {
		if time.Now().After(deadline) {
			t.Fatal("the room was not forgotten after its last member left")
		}
		time.Sleep(time.Millisecond)
	}
}

// History keeps at most HistorySize messages and none older than
// HistoryTTL; a room with no members and no history left is freed.
func TestMemoryHistoryBounds(t *testing.T) {
	now := time.Unix(1000, 0)
	var clock sync.Mutex
	mb := newMemBroker(MemoryConfig{HistorySize: 3, HistoryTTL: time.Minute, Now: func() time.Time {
		clock.Lock()
		defer clock.Unlock()
		return now
	}})
	sb := newSyncBus(mb, newBusRecorder(), 3, syncLimits{})
	mb.start(sb)
	defer sb.Close()
	ctx := context.Background()
	for range 5 {
		sb.Publish(ctx, "r", "a", []byte("1"))
	}
	msgs, top, _ := mb.read(ctx, "r", 0, 100)
	if len(msgs) != 3 || msgs[0].Offset != 3 || top.Offset != 5 {
		t.Fatalf("kept %d from %d (top %d), want the last 3", len(msgs), msgs[0].Offset, top.Offset)
	}
	clock.Lock()
	now = now.Add(2 * time.Minute)
	clock.Unlock()
	if msgs, _, _ := mb.read(ctx, "r", 0, 100); len(msgs) != 0 {
		t.Fatalf("kept %d messages older than the TTL", len(msgs))
	}
	sb.Publish(ctx, "kept", "a", []byte("1"))
	if err := sb.Attach(ctx, "empty-but-attended", nil, func(History) {}); err != nil {
		t.Fatal(err)
	}
	mb.sweep()
	if n := mb.rooms(); n != 2 {
		t.Fatalf("%d rooms after the sweep, want 2 (one with history, one with a member)", n)
	}
}
