package fanout

import (
	"context"
	"sync"
	"testing"
	"time"
)

// collect is a DeliverFunc that keeps every message.
type collect struct {
	mu   sync.Mutex
	msgs []Message
}

func (c *collect) deliver(m *Message) {
	c.mu.Lock()
	c.msgs = append(c.msgs, *m)
	c.mu.Unlock()
}

func publishN(t *testing.T, m *Memory, room string, n int) {
	t.Helper()
	for range n {
		if _, err := m.Publish(context.Background(), room, "tester", []byte(`{"n":1}`)); err != nil {
			t.Fatal(err)
		}
	}
}

func attach(t *testing.T, m *Memory, room string, since *Position) History {
	t.Helper()
	var h History
	err := m.Attach(context.Background(), room, since, func(got History) {
		h = got
		h.Missed = append([]Message(nil), got.Missed...) // valid only during the callback
	})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestMemoryOffsetsAndDelivery(t *testing.T) {
	t.Parallel()
	var c collect
	m := NewMemory(MemoryConfig{}, c.deliver)
	data := []byte(` {"keep" : [1, "é", {"x":null}]} `)
	for want := uint64(1); want <= 3; want++ {
		off, err := m.Publish(context.Background(), "r", "alice", data)
		if err != nil || off != want {
			t.Fatalf("Publish = %d, %v; want offset %d", off, err, want)
		}
	}
	data[1] = 'X' // the bus must have copied the data
	if len(c.msgs) != 3 || string(c.msgs[0].Data) != ` {"keep" : [1, "é", {"x":null}]} ` || c.msgs[2].Offset != 3 || c.msgs[1].From != "alice" {
		t.Fatalf("delivered %+v", c.msgs)
	}
	if off, _ := m.Publish(context.Background(), "other", "bob", data); off != 1 {
		t.Fatalf("a second room starts at offset %d, want 1", off)
	}
}

func TestMemoryRecovery(t *testing.T) {
	t.Parallel()
	var c collect
	m := NewMemory(MemoryConfig{HistorySize: 5, HistoryTTL: time.Nanosecond}, c.deliver)
	fresh := attach(t, m, "r", nil)
	if fresh.Latest.Offset != 0 || fresh.Latest.Epoch == "" || fresh.Recovered {
		t.Fatalf("new room: %+v", fresh)
	}
	epoch := fresh.Latest.Epoch
	publishN(t, m, "r", 8) // offsets 1..8, history keeps 4..8
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
		h := attach(t, m, "r", tc.since)
		var got []uint64
		for _, msg := range h.Missed {
			got = append(got, msg.Offset)
		}
		if h.Recovered != tc.recovered || len(got) != len(tc.missed) || h.Latest != (Position{epoch, 8}) {
			t.Fatalf("%s: recovered=%v missed=%v latest=%+v; want %v %v", tc.name, h.Recovered, got, h.Latest, tc.recovered, tc.missed)
		}
		for i := range got {
			if got[i] != tc.missed[i] {
				t.Fatalf("%s: missed %v, want %v", tc.name, got, tc.missed)
			}
		}
	}
}

// History keeps whichever is more: the last HistorySize messages or those
// younger than HistoryTTL.
func TestMemoryHistoryKeepsYoungMessages(t *testing.T) {
	t.Parallel()
	now := time.Unix(1000, 0)
	var c collect
	m := NewMemory(MemoryConfig{HistorySize: 2, HistoryTTL: time.Minute, Now: func() time.Time { return now }}, c.deliver)
	epoch := attach(t, m, "r", nil).Latest.Epoch
	publishN(t, m, "r", 5)
	if h := attach(t, m, "r", &Position{epoch, 0}); !h.Recovered || len(h.Missed) != 5 {
		t.Fatalf("young messages were trimmed: recovered=%v missed=%d", h.Recovered, len(h.Missed))
	}
	now = now.Add(2 * time.Minute)
	if h := attach(t, m, "r", &Position{epoch, 0}); h.Recovered {
		t.Fatal("old messages beyond HistorySize were kept")
	}
	if h := attach(t, m, "r", &Position{epoch, 3}); !h.Recovered || len(h.Missed) != 2 {
		t.Fatalf("the last HistorySize messages must stay: recovered=%v missed=%d", h.Recovered, len(h.Missed))
	}
}

// A member added inside Attach's callback sees every message exactly once,
// replayed or live, however publishes interleave with the join.
func TestMemoryAttachOrdersJoinWithDeliveries(t *testing.T) {
	t.Parallel()
	hub := NewHub()
	var mu sync.Mutex
	var seen []uint64
	member := &counter{}
	m := NewMemory(MemoryConfig{}, func(msg *Message) {
		if hub.IsMember(msg.Room, member) {
			mu.Lock()
			seen = append(seen, msg.Offset)
			mu.Unlock()
		}
	})
	epoch := attach(t, m, "r", nil).Latest.Epoch
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		publishN(t, m, "r", 2000)
	}()
	time.Sleep(time.Millisecond)
	err := m.Attach(context.Background(), "r", &Position{epoch, 0}, func(h History) {
		if !h.Recovered {
			t.Error("not recovered")
		}
		mu.Lock()
		for _, msg := range h.Missed {
			seen = append(seen, msg.Offset)
		}
		mu.Unlock()
		hub.Join("r", member)
	})
	if err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if len(seen) != 2000 {
		t.Fatalf("saw %d messages, want 2000", len(seen))
	}
	for i, off := range seen {
		if off != uint64(i+1) {
			t.Fatalf("message %d has offset %d: duplicated, missed or out of order", i, off)
		}
	}
}

func TestMemoryDetachKeepsEpochs(t *testing.T) {
	t.Parallel()
	now := time.Unix(1000, 0)
	var c collect
	m := NewMemory(MemoryConfig{HistoryTTL: time.Minute, Now: func() time.Time { return now }}, c.deliver)

	empty := attach(t, m, "empty", nil).Latest.Epoch
	m.Detach("empty")
	publishN(t, m, "empty", 1) // a publish after the last member left
	if h := attach(t, m, "empty", &Position{empty, 0}); !h.Recovered || h.Latest.Epoch != empty {
		t.Fatal("an empty room changed epoch when its last member left: nothing was lost")
	}

	quiet := attach(t, m, "quiet", nil).Latest.Epoch
	m.Detach("quiet")
	now = now.Add(2 * time.Minute)
	m.Detach("quiet") // a later Detach sweeps the shard
	if attach(t, m, "quiet", nil).Latest.Epoch == quiet {
		t.Fatal("an empty room unattended for longer than HistoryTTL was kept")
	}

	publishN(t, m, "busy", 1)
	busy := attach(t, m, "busy", nil).Latest.Epoch
	m.Detach("busy")
	now = now.Add(time.Hour)
	m.Detach("busy")
	if h := attach(t, m, "busy", &Position{busy, 0}); !h.Recovered || h.Latest.Epoch != busy {
		t.Fatal("a room with history lost it when its last member left")
	}
}
