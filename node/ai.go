package node

import (
	"sync"
	"time"

	"github.com/edgehub/edgehub/netloop"
	"github.com/edgehub/edgehub/queue"
)

// aiRelay takes the chunks the queue produces for this node's jobs to the
// connections that wait for them: the asker, a connection that resumed the
// job after a reconnect, or a room's members. It is the queue's Sink.
//
// Every recipient has a watermark, the last seq it was sent, so that a
// resume (which replays stored chunks, then waits for live ones) and the
// live stream never send one chunk twice.
type aiRelay struct {
	n    *Node
	mu   sync.Mutex
	jobs map[string]*relayJob
}

// relayJob holds a job's recipients on this node. Its lock orders what a
// recipient is sent: the queued answer, replays, live chunks.
type relayJob struct {
	mu         sync.Mutex
	room       string
	recipients map[*netloop.Conn]int // last seq sent; noChunks for a canceller
	ended      bool                  // last chunk or failure relayed: the job is gone from the map
}

// noChunks is the watermark of a connection that only waits for the end
// of a job (it cancelled it) and must not be sent chunks.
const noChunks = int(^uint(0) >> 1)

func newRelay(n *Node) *aiRelay {
	return &aiRelay{n: n, jobs: make(map[string]*relayJob)}
}

// lockJob returns the job's relay state, created if need be, locked.
func (a *aiRelay) lockJob(id, room string) *relayJob {
	for {
		a.mu.Lock()
		rj := a.jobs[id]
		if rj == nil {
			rj = &relayJob{room: room, recipients: make(map[*netloop.Conn]int)}
			a.jobs[id] = rj
		}
		a.mu.Unlock()
		rj.mu.Lock()
		if !rj.ended {
			return rj
		}
		rj.mu.Unlock() // ended between the lookup and the lock: it left the map
	}
}

// lookup returns the job's relay state, locked, or nil.
func (a *aiRelay) lookup(id string) *relayJob {
	a.mu.Lock()
	rj := a.jobs[id]
	a.mu.Unlock()
	if rj == nil {
		return nil
	}
	rj.mu.Lock()
	if rj.ended {
		rj.mu.Unlock()
		return nil
	}
	return rj
}

// end removes the job. Called with rj.mu held.
func (a *aiRelay) end(id string, rj *relayJob) {
	rj.ended = true
	a.mu.Lock()
	delete(a.jobs, id)
	a.mu.Unlock()
	for c := range rj.recipients {
		c.Session().(*session).removeJob(id)
	}
}

// start registers the asker of a new job and runs enqueue, which sends
// "queued", while holding the job: no chunk can overtake "queued".
func (a *aiRelay) start(s *session, job *queue.Job, enqueue func() error) error {
	rj := a.lockJob(job.ID, job.Room)
	defer rj.mu.Unlock()
	if job.Room == "" {
		rj.recipients[s.conn] = -1
		s.addJob(job.ID)
	}
	if err := enqueue(); err != nil {
		a.end(job.ID, rj)
		return err
	}
	return nil
}

// cancel makes the canceller a recipient of the job's end (unless it is
// one already), then runs cancelJob, whose failure report reaches it.
func (a *aiRelay) cancel(s *session, id string, cancelJob func() error) error {
	rj := a.lockJob(id, "")
	_, was := rj.recipients[s.conn]
	if !was && !(rj.room != "" && a.n.hub.IsMember(rj.room, s.conn)) {
		rj.recipients[s.conn] = noChunks
	}
	rj.mu.Unlock()
	// Not under rj.mu: a queue reports the end (OnFailed) from Cancel.
	err := cancelJob()
	if err != nil {
		if rj := a.lookup(id); rj != nil {
			if !was {
				delete(rj.recipients, s.conn)
			}
			if len(rj.recipients) == 0 && rj.room == "" {
				a.end(id, rj)
			}
			rj.mu.Unlock()
		}
	}
	return err
}

// resume replays a job's chunks after seq to s and, while the job runs,
// makes s a recipient of the rest. answer reads the stored answer (and
// answers not_found / forbidden itself).
func (a *aiRelay) resume(s *session, id string, seq int, answer func() (queue.Answer, bool)) {
	rj := a.lockJob(id, "")
	defer rj.mu.Unlock()
	ans, ok := answer()
	if !ok {
		if len(rj.recipients) == 0 {
			a.end(id, rj)
		}
		return
	}
	rj.room = ans.Job.Room
	last := seq
	for _, c := range ans.Chunks {
		s.send(chunkFrame(&ans.Job, c))
		last = c.Seq
	}
	switch {
	case ans.Ended:
		if len(ans.Chunks) == 0 && ans.Last != nil && ans.Last.Done {
			// The client holds the last chunk already: say again that
			// it was the last.
			s.send(chunkFrame(&ans.Job, *ans.Last))
		}
		if ans.Failed != "" {
			s.send(aiErrorFrame(id, ans.Failed))
		}
		if len(rj.recipients) == 0 {
			a.end(id, rj)
		}
	case rj.room != "" && a.n.hub.IsMember(rj.room, s.conn):
		// A member gets the live chunks with the room.
	default:
		if sent, ok := rj.recipients[s.conn]; ok {
			last = max(last, sent) // resumed twice on one connection
		}
		rj.recipients[s.conn] = last
		s.addJob(id)
	}
}

// forget drops a closed connection from the jobs it was waiting for.
func (a *aiRelay) forget(c *netloop.Conn, jobs []string) {
	for _, id := range jobs {
		if rj := a.lookup(id); rj != nil {
			delete(rj.recipients, c)
			rj.mu.Unlock()
		}
	}
}

// OnChunk implements queue.Sink.
func (a *aiRelay) OnChunk(job *queue.Job, c queue.Chunk) {
	m := a.n.metrics
	if c.Seq == 0 {
		m.aiFirstChunk.Update(time.Since(job.Created).Seconds())
	}
	if c.Done {
		m.aiJob(job.Queue, "done")
	}
	rj := a.lookup(job.ID)
	if rj == nil {
		return // nobody on this node waits: the chunks stay in the queue for a resume
	}
	defer rj.mu.Unlock()
	f := chunkFrame(job, c)
	if job.Room != "" {
		a.n.hub.Broadcast(job.Room, f)
	}
	for conn, last := range rj.recipients {
		if c.Seq > last && !(job.Room != "" && a.n.hub.IsMember(job.Room, conn)) {
			conn.Send(f)
			rj.recipients[conn] = c.Seq
		}
	}
	if c.Done {
		a.end(job.ID, rj)
	}
}

// OnFailed implements queue.Sink.
func (a *aiRelay) OnFailed(job *queue.Job, reason string) {
	state := "failed"
	if reason == queue.ReasonCancelled || reason == queue.ReasonTimeout {
		state = reason
	}
	a.n.metrics.aiJob(job.Queue, state)
	rj := a.lookup(job.ID)
	if rj == nil {
		return
	}
	defer rj.mu.Unlock()
	f := aiErrorFrame(job.ID, reason)
	if job.Room != "" {
		a.n.hub.Broadcast(job.Room, f)
	}
	for conn := range rj.recipients {
		if !(job.Room != "" && a.n.hub.IsMember(job.Room, conn)) {
			conn.Send(f)
		}
	}
	a.end(job.ID, rj)
}

func chunkFrame(job *queue.Job, c queue.Chunk) []byte {
	return encode(func(e *encoder) {
		e.begin("ai-chunk").str("job", job.ID).int("seq", int64(c.Seq)).str("content", c.Content).bool("done", c.Done)
		if job.Room != "" {
			e.str("room", job.Room)
		}
	})
}

func aiErrorFrame(id, reason string) []byte {
	return encode(func(e *encoder) { e.begin("ai-error").str("job", id).str("error", reason) })
}
