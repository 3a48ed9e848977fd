package fanout

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
)

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
		if ok != tc.ok || edge != tc.edge || h.Rooms() != tc.rooms || h.Members("r") != tc.memb {
			t.Fatalf("%s: got (%v, %v) rooms=%d members=%d; want (%v, %v) rooms=%d members=%d",
				tc.name, ok, edge, h.Rooms(), h.Members("r"), tc.ok, tc.edge, tc.rooms, tc.memb)
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
