package node

import (
	"slices"
	"testing"
	"unsafe"
)

// TestSessionRooms walks a session through joins and leaves of one and of
// several rooms: the first room lives in the session itself, the others
// beside it, and every method must see them all.
func TestSessionRooms(t *testing.T) {
	t.Parallel()
	s := newSession()
	tcs := []struct {
		name  string
		do    func() bool // nil: a step that only checks
		ok    bool
		rooms []string // what the session is in afterwards, any order
	}{
		{"starts in none", nil, false, nil},
		{"leave before any join", func() bool { return s.removeRoom("a") }, false, nil},
		{"first room", func() bool { s.addRoom("a"); return true }, true, []string{"a"}},
		{"second room", func() bool { s.addRoom("b"); return true }, true, []string{"a", "b"}},
		{"third room", func() bool { s.addRoom("c"); return true }, true, []string{"a", "b", "c"}},
		{"leave the first: another takes its place", func() bool { return s.removeRoom("a") }, true, []string{"b", "c"}},
		{"leave it twice", func() bool { return s.removeRoom("a") }, false, []string{"b", "c"}},
		{"leave one of the others", func() bool { return s.removeRoom("b") }, true, []string{"c"}},
		{"leave a room never joined", func() bool { return s.removeRoom("z") }, false, []string{"c"}},
		{"the empty name is no room", func() bool { return s.removeRoom("") }, false, []string{"c"}},
		{"join again", func() bool { s.addRoom("a"); return true }, true, []string{"a", "c"}},
	}
	for _, tc := range tcs {
		if tc.do != nil {
			if ok := tc.do(); ok != tc.ok {
				t.Fatalf("%s: got %v, want %v", tc.name, ok, tc.ok)
			}
		}
		if n := s.roomCount(); n != len(tc.rooms) {
			t.Fatalf("%s: roomCount %d, want %d", tc.name, n, len(tc.rooms))
		}
		for _, r := range []string{"a", "b", "c", "z", ""} {
			if got, want := s.inRoom(r), slices.Contains(tc.rooms, r); got != want {
				t.Fatalf("%s: inRoom(%q) = %v, want %v", tc.name, r, got, want)
			}
		}
	}
	rooms, _ := s.detach()
	slices.Sort(rooms)
	if !slices.Equal(rooms, []string{"a", "c"}) {
		t.Fatalf("detach returned %q, want [a c]", rooms)
	}
	if s.roomCount() != 0 || s.inRoom("a") {
		t.Fatal("rooms left after detach")
	}
}

// An idle connection is in one room: recording it must cost no allocation
// beyond the session itself.
func TestSessionOneRoomDoesNotAllocate(t *testing.T) {
	const runs = 100
	fresh := make([]*session, runs+1) // AllocsPerRun calls once more to warm up
	for i := range fresh {
		fresh[i] = newSession()
	}
	i := 0
	allocs := testing.AllocsPerRun(runs, func() {
		fresh[i].addRoom("room-1")
		i++
	})
	if allocs != 0 {
		t.Fatalf("a session's first room allocated %.1f times; want 0", allocs)
	}
}

func TestSessionJobs(t *testing.T) {
	t.Parallel()
	s := newSession()
	s.removeJob("none") // before any job: a no-op
	s.addJob("j1")
	s.addJob("j2")
	s.addJob("j1") // once only
	s.removeJob("j2")
	s.removeJob("j3")
	s.addJob("j3")
	_, jobs := s.detach()
	if !slices.Equal(jobs, []string{"j1", "j3"}) {
		t.Fatalf("detach returned jobs %q, want [j1 j3]", jobs)
	}
	s.addJob("j4")
	s.removeJob("j4")
	if _, jobs := s.detach(); len(jobs) != 0 {
		t.Fatalf("jobs %q left after the last was removed", jobs)
	}
}

// Every connection has a session: it fits the 96-byte size class, with
// what most connections never use (a second room, AI jobs) behind
// pointers. A field added here moves every idle connection to the next
// class (112 bytes).
func TestSessionSize(t *testing.T) {
	if size := unsafe.Sizeof(session{}); size > 96 {
		t.Fatalf("session is %d bytes; keep it within 96", size)
	}
}
