package fanout

import (
	"context"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"
)

// broker is where a Bus keeps the rooms' streams and how it reaches other
// nodes: in the process (memBroker) or in Redis (redisBroker). What a node
// does with a room's stream, subscribing, ordering, de-duplicating,
// filling gaps, syncing joins, is the same for both: syncBus.
type broker interface {
	// publish stores a message and sends it to every subscribed node.
	publish(ctx context.Context, room, from string, data []byte) (Message, error)
	// read returns the room's latest position and, oldest first, at most
	// limit of its retained messages after offset after (limit 0: the
	// position only). It creates the room's epoch when it has none.
	read(ctx context.Context, room string, after uint64, limit int) ([]Message, Position, error)
	// epoch is the room's epoch as stored, from a cache where there is
	// one; "" when the room has none.
	epoch(ctx context.Context, room string) (string, error)
	// subscribe returns once the node receives the room's live messages
	// (syncBus.live); unsubscribe stops them.
	subscribe(ctx context.Context, room string) error
	unsubscribe(room string)
	relay(ctx context.Context, room string, payload []byte) error
	sendToNode(ctx context.Context, node string, payload []byte) error
	ready(ctx context.Context) error
	Fleet
	close() error
}

// Sync limits; the zero value of each config field means these.
const (
	// fillBatch is how many messages one history read of a gap fill asks for.
	fillBatch = 1000
	// maxPending bounds the live messages a room holds while it fills a gap.
	// Past it they are dropped: they are in the history, and the fill reads
	// on until it has caught up.
	maxPending = 4096
	// fillTimeout bounds one history read of a fill; a failed read is
	// retried with backoff for as long as the room has members.
	fillTimeout = 5 * time.Second
	// maxFills bounds the history reads of gap fills running at once: a
	// shard that comes back after an outage resyncs every room it holds,
	// and Redis should see a queue of reads, not 100,000 at once.
	maxFills = 64
	// recoveryOverhead is what a replayed message costs in a connection's
	// queue beyond its data, room and sender (frame header, JSON keys).
	recoveryOverhead = 64
)

// syncBus is the Bus: it keeps, for every room this node is attached to,
// the last offset delivered, and turns the broker's live stream into
// exactly-once, in-order deliveries.
//
//   - A live message at the next offset is delivered; an older one is a
//     duplicate and dropped; one that skips ahead is a gap: the room reads
//     the missing messages from the history, delivers them, then the live
//     messages it held meanwhile.
//   - After a lost subscription comes back (resync) the room fills from its
//     last offset, since the broker may have dropped what was published in
//     between.
//   - A join with a position reads the history without holding anything
//     the live stream needs: live messages delivered meanwhile are copied
//     to the join, and the two are merged by offset when the join's
//     callback runs, under the room's lock, in order with deliveries.
//
// Lock order: syncShard.mu ─▶ syncRoom.mu; syncRoom.sub ─▶ syncRoom.mu.
// syncRoom.mu is held while delivering (Receiver, Hub, connections) and
// never across broker I/O; syncRoom.sub is held across subscribe and
// unsubscribe, so only joins of that one room wait for them.
type syncBus struct {
	broker
	recv          Receiver
	recoveryMax   int
	recoveryBytes int

	seed   maphash.Seed
	shards [hubShards]syncShard

	ctx      context.Context // cancelled by Close: stops fills
	stop     context.CancelFunc
	fills    chan struct{} // a slot per running fill read (maxFills)
	wg       sync.WaitGroup
	gapFills atomic.Uint64 // messages delivered by gap fills
	lost     atomic.Uint64 // offsets skipped because the history no longer had them
}

type syncShard struct {
	mu    sync.Mutex
	rooms map[string]*syncRoom
}

type syncRoom struct {
	name string
	sub  sync.Mutex // serialises subscribe and unsubscribe of this room

	mu         sync.Mutex
	refs       int    // local members (Attach minus Detach)
	subscribed bool   // written under sub and mu
	known      bool   // epoch and last are this room's stream position
	epoch      string // of the last delivered message
	last       uint64 // offset of the last delivered message
	filling    bool   // a fill runs: live messages wait in pending
	refill     bool   // a resync came while filling: fill once more
	pending    []Message
	joins      []*joinBuf
}

// joinBuf collects the messages delivered while a join reads history.
type joinBuf struct{ msgs []Message }

// syncLimits are a Bus's recovery bounds.
type syncLimits struct {
	RecoveryMax   int // messages; 0 means the history size
	RecoveryBytes int // bytes of replay; 0 means no byte bound
}

func newSyncBus(b broker, recv Receiver, historySize int, lim syncLimits) *syncBus {
	if lim.RecoveryMax <= 0 {
		lim.RecoveryMax = historySize
	}
	s := &syncBus{broker: b, recv: recv, recoveryMax: lim.RecoveryMax, recoveryBytes: lim.RecoveryBytes,
		seed: maphash.MakeSeed(), fills: make(chan struct{}, maxFills)}
	s.ctx, s.stop = context.WithCancel(context.Background())
	for i := range s.shards {
		s.shards[i].rooms = make(map[string]*syncRoom)
	}
	return s
}

func (s *syncBus) shard(room string) *syncShard {
	return &s.shards[maphash.String(s.seed, room)%hubShards]
}

// lookup returns the room's state, or nil when no member is attached.
func (s *syncBus) lookup(room string) *syncRoom {
	sh := s.shard(room)
	sh.mu.Lock()
	r := sh.rooms[room]
	sh.mu.Unlock()
	return r
}

// Publish implements Bus.
func (s *syncBus) Publish(ctx context.Context, room, from string, data []byte) (uint64, error) {
	if s.ctx.Err() != nil {
		return 0, ErrClosed
	}
	m, err := s.publish(ctx, room, from, data)
	return m.Offset, err
}

// Attach implements Bus.
func (s *syncBus) Attach(ctx context.Context, room string, since *Position, fn func(History)) error {
	if s.ctx.Err() != nil {
		return ErrClosed
	}
	sh := s.shard(room)
	sh.mu.Lock()
	r := sh.rooms[room]
	if r == nil {
		r = &syncRoom{name: room}
		sh.rooms[room] = r
	}
	r.mu.Lock()
	r.refs++
	r.mu.Unlock()
	sh.mu.Unlock()

	if err := s.subscribed(ctx, r); err != nil {
		s.Detach(room)
		return err
	}
	if since != nil {
		// A position is only as good as the node's view of the room: when
		// the room's history was lost (FLUSHALL, expiry) and the node's
		// live stream has not shown it yet, the stored epoch tells.
		stored, err := s.epoch(ctx, room)
		if err == nil && stored != s.epochOf(r) {
			var top Position
			if _, top, err = s.read(ctx, room, 0, 0); err == nil {
				r.mu.Lock()
				fn(History{Latest: top})
				r.mu.Unlock()
				return nil
			}
		}
		if err != nil {
			s.Detach(room)
			return err
		}
	}
	r.mu.Lock()
	if since == nil || since.Epoch != r.epoch || since.Offset >= r.last {
		// Nothing to read: no position, another epoch's, or up to date.
		recovered := since != nil && since.Epoch == r.epoch && since.Offset == r.last
		fn(History{Latest: Position{Epoch: r.epoch, Offset: r.last}, Recovered: recovered})
		r.mu.Unlock()
		return nil
	}
	j := &joinBuf{}
	r.joins = append(r.joins, j)
	r.mu.Unlock()

	hist, top, err := s.read(ctx, room, since.Offset, s.recoveryMax+1)

	r.mu.Lock()
	for i, o := range r.joins {
		if o == j {
			r.joins = append(r.joins[:i], r.joins[i+1:]...)
			break
		}
	}
	if err != nil {
		r.mu.Unlock()
		s.Detach(room)
		return err
	}
	fn(s.merge(r, *since, hist, top, j.msgs))
	r.mu.Unlock()
	return nil
}

func (s *syncBus) epochOf(r *syncRoom) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.epoch
}

// merge is what a joining member at since missed: every message after
// since up to the last one delivered, from the history read and the
// deliveries made while it was read. Called with r.mu held.
func (s *syncBus) merge(r *syncRoom, since Position, hist []Message, top Position, live []Message) History {
	h := History{Latest: Position{Epoch: r.epoch, Offset: r.last}}
	want := r.last - since.Offset
	if since.Epoch != r.epoch || top.Epoch != r.epoch || want > uint64(s.recoveryMax) {
		return h
	}
	missed := make([]Message, 0, want)
	next, size := since.Offset+1, 0
	add := func(m *Message) bool {
		switch {
		case m.Offset < next:
			return true // in both the history and the deliveries
		case m.Offset > next:
			return false // a hole: the history lost it
		}
		size += m.size()
		missed = append(missed, *m)
		next++
		return true
	}
	for i := range hist {
		if hist[i].Offset > r.last {
			break
		}
		if !add(&hist[i]) {
			return h
		}
	}
	for i := range live {
		if !add(&live[i]) {
			return h
		}
	}
	if uint64(len(missed)) != want || (s.recoveryBytes > 0 && size > s.recoveryBytes) {
		return h
	}
	h.Missed, h.Recovered = missed, true
	return h
}

// subscribed makes sure the node receives the room and knows its position.
func (s *syncBus) subscribed(ctx context.Context, r *syncRoom) error {
	r.sub.Lock()
	defer r.sub.Unlock()
	r.mu.Lock()
	done := r.subscribed
	if !done {
		// Live messages that come before the position is known wait.
		r.known, r.filling, r.pending = false, true, nil
	}
	r.mu.Unlock()
	if done {
		return nil
	}
	err := s.subscribe(ctx, r.name)
	var top Position
	if err == nil {
		if _, top, err = s.read(ctx, r.name, 0, 0); err != nil {
			s.unsubscribe(r.name)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.filling, r.pending = false, nil
		return err
	}
	r.subscribed, r.known, r.epoch, r.last = true, true, top.Epoch, top.Offset
	s.drainPending(r)
	return nil
}

// Detach implements Bus.
func (s *syncBus) Detach(room string) {
	r := s.lookup(room)
	if r == nil {
		return
	}
	r.mu.Lock()
	r.refs--
	idle := r.refs == 0
	r.mu.Unlock()
	if idle {
		s.wg.Add(1)
		go s.release(r)
	}
}

// release unsubscribes a room without members and forgets it, unless a
// join came back in the meantime.
func (s *syncBus) release(r *syncRoom) {
	defer s.wg.Done()
	r.sub.Lock()
	r.mu.Lock()
	unsub := r.refs == 0 && r.subscribed
	if unsub {
		r.subscribed, r.known, r.filling, r.pending = false, false, false, nil
	}
	r.mu.Unlock()
	if unsub {
		s.unsubscribe(r.name)
	}
	r.sub.Unlock()
	sh := s.shard(r.name)
	sh.mu.Lock()
	r.mu.Lock()
	if r.refs == 0 && !r.subscribed && sh.rooms[r.name] == r {
		delete(sh.rooms, r.name)
	}
	r.mu.Unlock()
	sh.mu.Unlock()
}

// live takes one message of the broker's live stream. The broker calls it
// for one room at a time, in the order the room's channel carried them.
func (s *syncBus) live(m *Message) {
	r := s.lookup(m.Room)
	if r == nil {
		return
	}
	r.mu.Lock()
	s.step(r, m)
	r.mu.Unlock()
}

// step delivers m, drops it as a duplicate, or starts a gap fill. Called
// with r.mu held.
func (s *syncBus) step(r *syncRoom, m *Message) {
	switch {
	case !r.subscribed && !r.filling:
		return // being released: nobody here wants it
	case !r.known || r.filling:
		if len(r.pending) < maxPending {
			r.pending = append(r.pending, *m)
		}
		return
	}
	if m.Epoch != r.epoch {
		// The room's history was lost and its stream began again.
		r.epoch, r.last = m.Epoch, 0
	}
	switch {
	case m.Offset <= r.last:
		// A duplicate: delivered already, by a fill or live.
	case m.Offset == r.last+1:
		s.deliver(r, m)
	default:
		r.filling = true
		r.pending = append(r.pending[:0], *m)
		s.startFill(r)
	}
}

// deliver hands m to the node. Called with r.mu held.
func (s *syncBus) deliver(r *syncRoom, m *Message) {
	r.last = m.Offset
	for _, j := range r.joins {
		j.msgs = append(j.msgs, *m)
	}
	s.recv.Deliver(m)
}

// resync is called by the broker when the room's subscription came back
// after it was lost: what was published in between is read from the
// history.
func (s *syncBus) resync(room string) {
	r := s.lookup(room)
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case !r.subscribed || !r.known:
		// The first subscription, still being made: it reads the position.
	case r.filling:
		r.refill = true
	default:
		r.filling = true
		s.startFill(r)
	}
}

func (s *syncBus) startFill(r *syncRoom) {
	s.wg.Add(1)
	go s.fill(r)
}

// fill reads the room's history after the last delivered offset and
// delivers it, then the live messages held meanwhile.
func (s *syncBus) fill(r *syncRoom) {
	defer s.wg.Done()
	backoff := 50 * time.Millisecond
	for {
		r.mu.Lock()
		after, gone := r.last, !r.subscribed
		r.refill = false
		r.mu.Unlock()
		if gone || s.ctx.Err() != nil {
			return // released or closed: the state was reset
		}
		select {
		case s.fills <- struct{}{}:
		case <-s.ctx.Done():
			return
		}
		ctx, cancel := context.WithTimeout(s.ctx, fillTimeout)
		msgs, top, err := s.read(ctx, r.name, after, fillBatch)
		cancel()
		<-s.fills
		if err != nil {
			select {
			case <-s.ctx.Done():
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 2*time.Second)
			continue
		}
		r.mu.Lock()
		if !r.subscribed {
			r.mu.Unlock()
			return
		}
		if top.Epoch != r.epoch {
			r.epoch, r.last = top.Epoch, 0
		}
		for i := range msgs {
			m := &msgs[i]
			if m.Offset <= r.last {
				continue
			}
			if m.Offset > r.last+1 {
				s.lost.Add(m.Offset - r.last - 1) // trimmed before it could be read
			}
			s.gapFills.Add(1)
			s.deliver(r, m)
		}
		if r.last < top.Offset && len(msgs) == fillBatch || r.refill {
			r.mu.Unlock()
			continue
		}
		s.drainPending(r)
		r.mu.Unlock()
		return
	}
}

// drainPending ends a fill: the held live messages go through step, which
// may find another gap and fill again. Called with r.mu held.
func (s *syncBus) drainPending(r *syncRoom) {
	p := r.pending
	r.pending, r.filling = nil, false
	for i := range p {
		s.step(r, &p[i])
	}
}

// Relay implements Bus.
func (s *syncBus) Relay(ctx context.Context, room string, payload []byte) error {
	return s.relay(ctx, room, payload)
}

// relayed hands a relayed payload to the node when it has members in room.
func (s *syncBus) relayed(room string, payload []byte) {
	if r := s.lookup(room); r != nil {
		s.recv.Relayed(room, payload)
	}
}

// SendToNode implements Bus.
func (s *syncBus) SendToNode(ctx context.Context, node string, payload []byte) error {
	return s.sendToNode(ctx, node, payload)
}

// Ready implements Bus.
func (s *syncBus) Ready(ctx context.Context) error { return s.ready(ctx) }

// attached reports whether room has local members.
func (s *syncBus) attached(room string) bool { return s.lookup(room) != nil }

// Close implements Bus: fills stop, then the broker.
func (s *syncBus) Close() error {
	s.stop()
	s.wg.Wait()
	return s.close()
}

// SyncStats counts what gap fills did.
type SyncStats struct {
	GapFilled uint64 // messages delivered from the history after a gap
	Lost      uint64 // offsets never delivered: the history had lost them
}

// Stats reports the fills' counts.
func (s *syncBus) Stats() SyncStats {
	return SyncStats{GapFilled: s.gapFills.Load(), Lost: s.lost.Load()}
}
