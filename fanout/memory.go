package fanout

import (
	"context"
	"errors"
	"hash/maphash"
	"sync"
	"time"
)

// MemoryConfig tunes a Memory bus; the zero value means the defaults.
type MemoryConfig struct {
	NodeID string // this node's id, for SendToNode and the fleet view
	// HistorySize is the most messages a room keeps.
	HistorySize int
	// HistoryTTL: no message older than this is kept.
	HistoryTTL time.Duration
	// RecoveryMax and RecoveryBytes bound what a join replays; beyond
	// them the join is not recovered.
	RecoveryMax   int
	RecoveryBytes int
	// Now is the clock; tests set it.
	Now func() time.Time
}

// NewMemory returns the Bus of a single node: rooms, offsets and history
// live in the process and are lost with it (a restart gives every room a
// new epoch).
func NewMemory(cfg MemoryConfig, recv Receiver) Bus {
	m := newMemBroker(cfg)
	m.start(newSyncBus(m, recv, m.cfg.HistorySize, syncLimits{RecoveryMax: m.cfg.RecoveryMax, RecoveryBytes: m.cfg.RecoveryBytes}))
	return m.bus
}

func newMemBroker(cfg MemoryConfig) *memBroker {
	if cfg.HistorySize <= 0 {
		cfg.HistorySize = DefaultHistorySize
	}
	if cfg.HistoryTTL <= 0 {
		cfg.HistoryTTL = DefaultHistoryTTL
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	m := &memBroker{cfg: cfg, seed: maphash.MakeSeed(), revoked: make(map[string]time.Time), stop: make(chan struct{})}
	for i := range m.shards {
		m.shards[i].rooms = make(map[string]*memRoom)
	}
	return m
}

// start hands the broker's live messages to bus and starts the sweep.
func (m *memBroker) start(bus *syncBus) {
	m.bus = bus
	m.live = bus.live
	m.wg.Add(1)
	go m.sweepEvery(min(m.cfg.HistoryTTL/2, time.Minute))
}

// memBroker keeps rooms' streams in the process.
type memBroker struct {
	cfg    MemoryConfig
	bus    *syncBus
	live   func(*Message) // bus.live; tests put a lossy link in between
	seed   maphash.Seed
	shards [hubShards]memShard

	mu      sync.Mutex
	revoked map[string]time.Time // jti -> until
	self    NodeInfo

	stop chan struct{}
	wg   sync.WaitGroup
}

type memShard struct {
	mu    sync.Mutex
	rooms map[string]*memRoom
}

// memRoom is one room's stream. Its lock is held while a message is
// handed to the sync layer, which orders a room's live messages.
type memRoom struct {
	mu     sync.Mutex
	epoch  string
	offset uint64
	hist   []Message // hist[head:] is the history, oldest first
	head   int
}

// lockRoom returns the room, created if need be, with its lock held. The
// shard lock is taken first and kept until the room is locked, so the
// sweep cannot forget a room a publish is about to write to.
func (m *memBroker) lockRoom(name string) *memRoom {
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

func (m *memBroker) publish(_ context.Context, room, from string, data []byte) (Message, error) {
	now := m.cfg.Now()
	r := m.lockRoom(room)
	defer r.mu.Unlock()
	r.offset++
	msg := Message{Room: room, Epoch: r.epoch, Offset: r.offset, From: from, Data: append([]byte(nil), data...), Time: now}
	r.hist = append(r.hist, msg)
	r.trim(m.cfg.HistorySize, now.Add(-m.cfg.HistoryTTL))
	m.live(&msg)
	return msg, nil
}

// trim drops the oldest messages while the room keeps more than size or
// the oldest is older than cutoff. Called with r.mu held.
func (r *memRoom) trim(size int, cutoff time.Time) {
	for len(r.hist)-r.head > 0 && (len(r.hist)-r.head > size || r.hist[r.head].Time.Before(cutoff)) {
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

func (m *memBroker) read(_ context.Context, room string, after uint64, limit int) ([]Message, Position, error) {
	r := m.lockRoom(room)
	defer r.mu.Unlock()
	r.trim(m.cfg.HistorySize, m.cfg.Now().Add(-m.cfg.HistoryTTL))
	top := Position{Epoch: r.epoch, Offset: r.offset}
	kept := r.hist[r.head:]
	if limit == 0 || len(kept) == 0 || after >= r.offset {
		return nil, top, nil
	}
	// Offsets are contiguous in the history, so the first message after
	// `after` is found by arithmetic, not search.
	start := 0
	if after >= kept[0].Offset {
		start = int(after + 1 - kept[0].Offset)
	}
	kept = kept[start:]
	return append([]Message(nil), kept[:min(limit, len(kept))]...), top, nil
}

func (m *memBroker) epoch(_ context.Context, room string) (string, error) {
	r := m.lockRoom(room)
	defer r.mu.Unlock()
	return r.epoch, nil
}

// sweepEvery frees the rooms without members whose history is empty.
func (m *memBroker) sweepEvery(period time.Duration) {
	defer m.wg.Done()
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
			m.sweep()
		}
	}
}

func (m *memBroker) sweep() {
	cutoff := m.cfg.Now().Add(-m.cfg.HistoryTTL)
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		for name, r := range sh.rooms {
			r.mu.Lock()
			r.trim(m.cfg.HistorySize, cutoff)
			if len(r.hist) == r.head && !m.bus.attached(name) {
				delete(sh.rooms, name)
			}
			r.mu.Unlock()
		}
		sh.mu.Unlock()
	}
}

// rooms is the number of rooms the broker holds.
func (m *memBroker) rooms() int {
	n := 0
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		n += len(sh.rooms)
		sh.mu.Unlock()
	}
	return n
}

// In one process every room is subscribed by construction.
func (m *memBroker) subscribe(context.Context, string) error { return nil }
func (m *memBroker) unsubscribe(string)                      {}

func (m *memBroker) relay(_ context.Context, room string, payload []byte) error {
	m.bus.relayed(room, payload)
	return nil
}

var errUnknownNode = errors.New("fanout: no such node")

func (m *memBroker) sendToNode(_ context.Context, node string, payload []byte) error {
	if node != m.cfg.NodeID {
		return errUnknownNode
	}
	m.bus.recv.Addressed(payload)
	return nil
}

func (m *memBroker) ready(context.Context) error { return nil }

func (m *memBroker) Register(_ context.Context, info NodeInfo) error {
	m.mu.Lock()
	m.self = info
	m.mu.Unlock()
	return nil
}

func (m *memBroker) Nodes(context.Context) ([]NodeInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return []NodeInfo{m.self}, nil
}

func (m *memBroker) Revoke(_ context.Context, jti string, ttl time.Duration) error {
	now := m.cfg.Now()
	m.mu.Lock()
	for j, until := range m.revoked {
		if now.After(until) {
			delete(m.revoked, j)
		}
	}
	m.revoked[jti] = now.Add(ttl)
	m.mu.Unlock()
	m.bus.recv.Addressed(revokePayload(jti))
	return nil
}

func (m *memBroker) Revoked(_ context.Context, jti string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	until, ok := m.revoked[jti]
	return ok && m.cfg.Now().Before(until), nil
}

func (m *memBroker) close() error {
	close(m.stop)
	m.wg.Wait()
	return nil
}
