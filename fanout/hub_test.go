package fanout

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

// members is the number of local members of room.
func members(h *Hub, room string) int {
	sh := h.shard(room)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	if r := sh.rooms[room]; r != nil {
		return r.len()
	}
	return 0
}

// recorder is a Member that keeps what it is sent.
type recorder struct {
	mu     sync.Mutex
	frames [][]byte
}

func (r *recorder) Send(f []byte) bool {
	r.mu.Lock()
	r.frames = append(r.frames, f)
	r.mu.Unlock()
	return true
}

func (r *recorder) got() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]byte(nil), r.frames...)
}

// counter is a Member that only counts, for allocation checks and benchmarks.
type counter struct{ n atomic.Int64 }

func (c *counter) Send([]byte) bool { c.n.Add(1); return true }

func TestHubJoinLeave(t *testing.T) {
	t.Parallel()
	h := NewHub()
	a, b := &recorder{}, &recorder{}
	tcs := []struct {
		name        string
		do          func() (bool, bool)
		ok, edge    bool
		rooms, memb int
	}{
		{"first member", func() (bool, bool) { return h.Join("r", a) }, true, true, 1, 1},
		{"join again is a no-op", func() (bool, bool) { return h.Join("r", a) }, false, false, 1, 1},
		{"second member", func() (bool, bool) { return h.Join("r", b) }, true, false, 1, 2},
		{"leave a non-member room", func() (bool, bool) { return h.Leave("other", a) }, false, false, 1, 2},
		{"first leaves", func() (bool, bool) { return h.Leave("r", a) }, true, false, 1, 1},
		{"leave twice", func() (bool, bool) { return h.Leave("r", a) }, false, false, 1, 1},
		{"last leaves", func() (bool, bool) { return h.Leave("r", b) }, true, true, 0, 0},
	}
	for _, tc := range tcs {
		ok, edge := tc.do()
		if ok != tc.ok || edge != tc.edge || h.Rooms() != tc.rooms || members(h, "r") != tc.memb {
			t.Fatalf("%s: got (%v, %v) rooms=%d members=%d; want (%v, %v) rooms=%d members=%d",
				tc.name, ok, edge, h.Rooms(), members(h, "r"), tc.ok, tc.edge, tc.rooms, tc.memb)
		}
	}
}

func TestHubBroadcastSharesOneFrame(t *testing.T) {
	t.Parallel()
	h := NewHub()
	members := make([]*recorder, 5)
	for i := range members {
		members[i] = &recorder{}
		h.Join("room", members[i])
	}
	outsider := &recorder{}
	h.Join("elsewhere", outsider)
	h.Leave("room", members[2])

	frame := []byte("frame")
	if n := h.Broadcast("room", frame); n != 4 {
		t.Fatalf("Broadcast sent to %d members, want 4", n)
	}
	for i, m := range members {
		got := m.got()
		want := 1
		if i == 2 {
			want = 0
		}
		if len(got) != want {
			t.Fatalf("member %d got %d frames, want %d", i, len(got), want)
		}
		if want == 1 && &got[0][0] != &frame[0] {
			t.Fatalf("member %d got a copy of the frame; the bytes must be shared", i)
		}
	}
	if len(outsider.got()) != 0 {
		t.Fatal("a member of another room got the frame")
	}
}

func TestHubConcurrentJoinLeaveBroadcast(t *testing.T) {
	t.Parallel()
	h := NewHub()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := &counter{}
			for i := range 500 {
				room := fmt.Sprintf("room-%d", i%7)
				h.Join(room, m)
				h.Broadcast(room, []byte{byte(g)})
				h.Leave(room, m)
			}
		}()
	}
	wg.Wait()
	if h.Rooms() != 0 {
		t.Fatalf("%d rooms left after every member left", h.Rooms())
	}
}

// The per-member cost of a broadcast is one Send: no allocation.
func TestHubBroadcastDoesNotAllocate(t *testing.T) {
	h := NewHub()
	for range 1000 {
		h.Join("room", &counter{})
	}
	frame := []byte("frame")
	if allocs := testing.AllocsPerRun(100, func() { h.Broadcast("room", frame) }); allocs != 0 {
		t.Fatalf("Broadcast to 1000 members allocated %.1f times; want 0", allocs)
	}
}

// TestHubMatchesModel drives random joins and leaves of a few hundred
// members over a few rooms, against a map of sets: every answer of Join,
// Leave and IsMember, and who a broadcast reaches, must agree. Enough
// members to grow and wrap each room's index and to move entries back on
// deletion.
func TestHubMatchesModel(t *testing.T) {
	t.Parallel()
	h := NewHub()
	rng := rand.New(rand.NewPCG(1, 2))
	ms := make([]*counter, 300)
	for i := range ms {
		ms[i] = &counter{}
	}
	rooms := []string{"a", "b", "c"}
	model := map[string]map[*counter]bool{}
	for op := range 50000 {
		room, m := rooms[rng.IntN(len(rooms))], ms[rng.IntN(len(ms))]
		in := model[room][m]
		// Lean towards joins early and leaves late, so rooms fill and empty.
		if rng.IntN(50000) > op {
			added, first := h.Join(room, m)
			if added == in || first != (len(model[room]) == 0) {
				t.Fatalf("op %d: Join(%s) = (%v, %v) with member=%v size=%d", op, room, added, first, in, len(model[room]))
			}
			if model[room] == nil {
				model[room] = map[*counter]bool{}
			}
			model[room][m] = true
		} else {
			removed, last := h.Leave(room, m)
			if removed != in || last != (in && len(model[room]) == 1) {
				t.Fatalf("op %d: Leave(%s) = (%v, %v) with member=%v size=%d", op, room, removed, last, in, len(model[room]))
			}
			delete(model[room], m)
		}
		if op%997 == 0 {
			checkModel(t, h, rooms, ms, model)
		}
	}
	checkModel(t, h, rooms, ms, model)
}

func checkModel(t *testing.T, h *Hub, rooms []string, ms []*counter, model map[string]map[*counter]bool) {
	t.Helper()
	for _, room := range rooms {
		for _, m := range ms {
			if got := h.IsMember(room, m); got != model[room][m] {
				t.Fatalf("IsMember(%s) = %v, want %v", room, got, model[room][m])
			}
		}
		before := make([]int64, len(ms))
		for i, m := range ms {
			before[i] = m.n.Load()
		}
		if n := h.Broadcast(room, nil); n != len(model[room]) {
			t.Fatalf("Broadcast(%s) reached %d, want %d", room, n, len(model[room]))
		}
		for i, m := range ms {
			want := int64(0)
			if model[room][m] {
				want = 1
			}
			if got := m.n.Load() - before[i]; got != want {
				t.Fatalf("member %d of %s got %d frames, want %d", i, room, got, want)
			}
		}
	}
}

// Once a room has grown, a member joining and leaving it allocates nothing.
func TestHubJoinLeaveDoNotAllocate(t *testing.T) {
	h := NewHub()
	for range 1000 {
		h.Join("room", &counter{})
	}
	m := &counter{}
	allocs := testing.AllocsPerRun(100, func() {
		h.Join("room", m)
		h.Leave("room", m)
	})
	if allocs != 0 {
		t.Fatalf("Join and Leave of a 1000-member room allocated %.1f times; want 0", allocs)
	}
}

// idleRooms and idleMembers are the idle benchmark's membership: 18,000
// connections spread over 100 rooms.
const idleRooms, idleMembers = 100, 18000

// joinIdle joins members to the idle run's rooms, one room each.
func joinIdle(h *Hub, members []*counter) {
	for i, m := range members {
		h.Join(fmt.Sprintf("room-%d", i%idleRooms), m)
	}
}

// heapBytes is the live heap after a collection.
func heapBytes() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestHubBytesPerMember holds the Hub's memory per member of the idle run
// (rooms, members slices, their index) under the ~63 bytes that a slice
// plus a map[Member]int index cost. Not parallel: it reads the heap.
func TestHubBytesPerMember(t *testing.T) {
	members := make([]*counter, idleMembers)
	for i := range members {
		members[i] = &counter{}
	}
	h := NewHub()
	before := heapBytes()
	joinIdle(h, members)
	perMember := float64(heapBytes()-before) / idleMembers
	runtime.KeepAlive(h)
	t.Logf("Hub: %.1f bytes per member (%d members in %d rooms)", perMember, idleMembers, idleRooms)
	if perMember > 40 {
		t.Fatalf("the Hub holds %.1f bytes per member; want <= 40", perMember)
	}
}

// BenchmarkHubJoinLeave is one member joining and leaving a 10,000-member
// room: the Hub's work in a reconnect storm.
func BenchmarkHubJoinLeave(b *testing.B) {
	h := NewHub()
	for range 10000 {
		h.Join("room", &counter{})
	}
	m := &counter{}
	b.ReportAllocs()
	for b.Loop() {
		h.Join("room", m)
		h.Leave("room", m)
	}
}

func BenchmarkHubBroadcast10k(b *testing.B) {
	h := NewHub()
	members := make([]*counter, 10000)
	for i := range members {
		members[i] = &counter{}
		h.Join("room", members[i])
	}
	frame := []byte(`{"type":"message","room":"room","offset":1,"from":"api","data":"0123456789012345678901234567890123456789012345678901234567890123"}`)
	b.ReportAllocs()
	for b.Loop() {
		h.Broadcast("room", frame)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(members)), "ns/member")
}
