package fanout

import (
	"hash/maphash"
	"sync"
)

// Member is a connection that can receive frames. Send must not block: it
// queues the frame (shared, never modified) and may drop a slow member.
type Member interface {
	Send(frame []byte) bool
}

const hubShards = 64

// Hub is the local membership of rooms. The zero value is not usable; use
// NewHub.
type Hub struct {
	seed   maphash.Seed
	shards [hubShards]hubShard
}

type hubShard struct {
	mu    sync.RWMutex
	rooms map[string]*memberSet
}

// NewHub returns an empty Hub.
func NewHub() *Hub {
	h := &Hub{seed: maphash.MakeSeed()}
	for i := range h.shards {
		h.shards[i].rooms = make(map[string]*memberSet)
	}
	return h
}

func (h *Hub) shard(room string) *hubShard {
	return &h.shards[maphash.String(h.seed, room)%hubShards]
}

// Join adds m to room. added is false when m was already a member; first
// is true when m is the room's first local member.
func (h *Hub) Join(room string, m Member) (added, first bool) {
	sh := h.shard(room)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	r := sh.rooms[room]
	if r == nil {
		r = &memberSet{}
		sh.rooms[room] = r
		first = true
	}
	return r.add(h.seed, m), first
}

// Leave removes m from room. removed is false when m was not a member; last
// is true when the room has no local member left.
func (h *Hub) Leave(room string, m Member) (removed, last bool) {
	sh := h.shard(room)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	r := sh.rooms[room]
	if r == nil || !r.remove(h.seed, m) {
		return false, false
	}
	if r.len() == 0 {
		delete(sh.rooms, room)
		return true, true
	}
	return true, false
}

// IsMember reports whether m is in room.
func (h *Hub) IsMember(room string, m Member) bool {
	sh := h.shard(room)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	r := sh.rooms[room]
	return r != nil && r.contains(h.seed, m)
}

// Broadcast hands frame to every member of room and returns how many took
// it. Every member gets the same bytes.
func (h *Hub) Broadcast(room string, frame []byte) (sent int) {
	sh := h.shard(room)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	r := sh.rooms[room]
	if r == nil {
		return 0
	}
	for _, m := range r.members {
		if m.Send(frame) {
			sent++
		}
	}
	return sent
}

// Rooms is the number of rooms with at least one local member.
func (h *Hub) Rooms() int {
	n := 0
	for i := range h.shards {
		sh := &h.shards[i]
		sh.mu.RLock()
		n += len(sh.rooms)
		sh.mu.RUnlock()
	}
	return n
}
