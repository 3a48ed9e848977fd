package fanout

import (
	"context"
	"hash/maphash"
	"sync"
	"time"
)

// MemoryConfig tunes a Memory bus; the zero value means the defaults.
type MemoryConfig struct {
	// HistorySize is how many messages a room keeps at least.
	HistorySize int
	// HistoryTTL: messages younger than this are kept even past
	// HistorySize (the protocol keeps whichever is more).
	HistoryTTL time.Duration
	// Now is the clock; tests set it.
	Now func() time.Time
}

// Memory is the Bus of a single node: rooms, offsets and history live in
// the process and are lost with it (a restart gives every room a new epoch).
type Memory struct {
	cfg     MemoryConfig
	deliver DeliverFunc
	seed    maphash.Seed
	shards  [hubShards]memShard
}

type memShard struct {
	mu    sync.Mutex
	rooms map[string]*memRoom
}

// memRoom is one room's stream. Its lock is held while a message is
// delivered, which is what orders deliveries and Attach callbacks.
type memRoom struct {
	mu     sync.Mutex
	epoch  string
	offset uint64
	hist   []Message // hist[head:] is the history, oldest first
	head   int
	// unattended is when the last local member of a room without
	// messages left; zero while it has members or messages.
	unattended time.Time
}

// NewMemory returns a Memory bus that hands every message to deliver.
func NewMemory(cfg MemoryConfig, deliver DeliverFunc) *Memory {
	if cfg.HistorySize <= 0 {
		cfg.HistorySize = DefaultHistorySize
	}
	if cfg.HistoryTTL <= 0 {
		cfg.HistoryTTL = DefaultHistoryTTL
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	m := &Memory{cfg: cfg, deliver: deliver, seed: maphash.MakeSeed()}
	for i := range m.shards {
		m.shards[i].rooms = make(map[string]*memRoom)
	}
	return m
}

// lockRoom returns the room, created if need be, with its lock held. The
// shard lock is taken first and kept until the room is locked, so Detach
// cannot forget a room a publish is about to write to.
func (m *Memory) lockRoom(name string) *memRoom {
	sh := &m.shards[maphash.String(m.seed, name)%hubShards]
	sh.mu.Lock()
	r := sh.rooms[name]
	if r == nil {
		r = &memRoom{epoch: newEpoch()}
		sh.rooms[name] = r
	}
	r.mu.Lock()
	sh.mu.Unlock()
	return r
}

// Publish implements Bus. data is copied.
func (m *Memory) Publish(_ context.Context, room, from string, data []byte) (uint64, error) {
	now := m.cfg.Now()
	r := m.lockRoom(room)
	defer r.mu.Unlock()
	r.unattended = time.Time{}
	r.offset++
	msg := Message{Room: room, Offset: r.offset, From: from, Data: append([]byte(nil), data...), Time: now}
	r.hist = append(r.hist, msg)
	r.trim(m.cfg.HistorySize, now.Add(-m.cfg.HistoryTTL))
	m.deliver(&msg)
	return msg.Offset, nil
}

// trim drops the oldest messages while the room keeps more than size and
// the oldest is older than cutoff. Called with r.mu held.
func (r *memRoom) trim(size int, cutoff time.Time) {
	for len(r.hist)-r.head > size && r.hist[r.head].Time.Before(cutoff) {
		r.hist[r.head] = Message{}
		r.head++
	}
	if r.head > 0 && r.head*2 >= len(r.hist) {
		n := copy(r.hist, r.hist[r.head:])
		clear(r.hist[n:])
		r.hist = r.hist[:n]
		r.head = 0
	}
}

// Attach implements Bus. Deliveries of the room wait while fn runs.
func (m *Memory) Attach(_ context.Context, room string, since *Position, fn func(History)) error {
	r := m.lockRoom(room)
	defer r.mu.Unlock()
	r.unattended = time.Time{}
	r.trim(m.cfg.HistorySize, m.cfg.Now().Add(-m.cfg.HistoryTTL))
	h := History{Latest: Position{Epoch: r.epoch, Offset: r.offset}}
	if since != nil {
		h.Missed, h.Recovered = r.since(*since)
	}
	fn(h)
	return nil
}

// since returns the retained messages after p, and whether they are all
// the messages after p. Called with r.mu held.
func (r *memRoom) since(p Position) ([]Message, bool) {
	if p.Epoch != r.epoch || p.Offset > r.offset {
		return nil, false
	}
	kept := r.hist[r.head:]
	if p.Offset == r.offset {
		return nil, true
	}
	if len(kept) == 0 || kept[0].Offset > p.Offset+1 {
		return nil, false // trimmed past the member's position
	}
	// Offsets are contiguous in the history, so the first missed message
	// is found by arithmetic, not search.
	return kept[p.Offset+1-kept[0].Offset:], true
}

// Detach implements Bus. A room keeps its epoch and history after its
// last local member leaves, so that a member coming back recovers. A room
// that never had a message is forgotten once it has stayed unattended for
// HistoryTTL (by a later Detach's sweep): joining rooms by the million must
// not grow memory for ever, and a client that comes back after that long
// to an empty room loses nothing by getting a new epoch.
func (m *Memory) Detach(room string) {
	now := m.cfg.Now()
	r := m.lockRoom(room)
	if r.offset == 0 && r.unattended.IsZero() {
		r.unattended = now
	}
	r.mu.Unlock()
	m.sweep(room, now)
}

// sweep forgets the unattended empty rooms of room's shard.
func (m *Memory) sweep(room string, now time.Time) {
	sh := &m.shards[maphash.String(m.seed, room)%hubShards]
	cutoff := now.Add(-m.cfg.HistoryTTL)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	for name, r := range sh.rooms {
		r.mu.Lock()
		if r.offset == 0 && !r.unattended.IsZero() && r.unattended.Before(cutoff) {
			delete(sh.rooms, name)
		}
		r.mu.Unlock()
	}
}

// Close implements Bus.
func (m *Memory) Close() error { return nil }
