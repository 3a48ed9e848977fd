package netloop

import (
	"sync"
	"sync/atomic"
)

const registryShards = 32

// registry is the set of live connections, lock-sharded by id so accepts
// and closes on different goroutines rarely meet.
type registry struct {
	nextID atomic.Uint64
	open   atomic.Int64 // open WebSocket connections
	shards [registryShards]struct {
		mu sync.Mutex
		m  map[*Conn]struct{}
	}
}

func (r *registry) init() {
	for i := range r.shards {
		r.shards[i].m = make(map[*Conn]struct{})
	}
}

func (r *registry) add(c *Conn) {
	sh := &r.shards[c.id%registryShards]
	sh.mu.Lock()
	sh.m[c] = struct{}{}
	sh.mu.Unlock()
}

func (r *registry) remove(c *Conn) {
	sh := &r.shards[c.id%registryShards]
	sh.mu.Lock()
	delete(sh.m, c)
	sh.mu.Unlock()
}

// each calls fn on a snapshot of each shard, outside the shard's lock, so
// fn may Send or Close.
func (r *registry) each(fn func(*Conn)) {
	var batch []*Conn
	for i := range r.shards {
		sh := &r.shards[i]
		sh.mu.Lock()
		batch = batch[:0]
		for c := range sh.m {
			batch = append(batch, c)
		}
		sh.mu.Unlock()
		for _, c := range batch {
			fn(c)
		}
	}
}

func (r *registry) len() int {
	n := 0
	for i := range r.shards {
		sh := &r.shards[i]
		sh.mu.Lock()
		n += len(sh.m)
		sh.mu.Unlock()
	}
	return n
}
