package node

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/gobwas/ws"
	"github.com/redis/rueidis"

	"github.com/edgehub/edgehub/fanout"
	"github.com/edgehub/edgehub/frame"
	"github.com/edgehub/edgehub/netloop"
	"github.com/edgehub/edgehub/queue"
)

// AIConfig tunes the node's AI queue; the zero value means the defaults.
// Without Redis the node answers in process (queue.Memory, echo backend);
// with Redis, jobs go to the fleet queue on the first -redis URL and
// edgehub-worker processes answer them.
type AIConfig struct {
	Rules      *queue.Rules // content routing (-ai-rules); queue.DefaultRules
	MaxWaiting int          // waiting jobs beyond which ai-query gets unavailable; queue.DefaultMaxWaiting
	MaxPerUser int          // jobs one user may have waiting or running (rate_limited beyond); queue.DefaultMaxPerUser
}

// newQueue builds the node's AI queue: in process without Redis, the
// fleet queue on the first -redis URL with it; and its gauges.
func (n *Node) newQueue() (queue.Queue, error) {
	q, err := n.buildQueue()
	if err != nil {
		return nil, err
	}
	rules := n.cfg.AI.Rules
	if rules == nil {
		rules = queue.DefaultRules()
	}
	st := &queueStats{q: q, timeout: n.cfg.RequestTimeout}
	for _, name := range rules.Queues() {
		for _, g := range []struct {
			metric string
			value  func(queue.Stats) int
		}{
			{"edgehub_ai_queue_length", func(s queue.Stats) int { return s.Length }},
			{"edgehub_ai_queue_pending", func(s queue.Stats) int { return s.Pending }},
			{"edgehub_ai_queue_consumers", func(s queue.Stats) int { return s.Consumers }},
		} {
			n.metrics.set.NewGauge(fmt.Sprintf(`%s{queue=%q}`, g.metric, name), func() float64 {
				return float64(g.value(st.of(name)))
			})
		}
	}
	return q, nil
}

// queueStats caches the queue's Stats for a second: one scrape reads
// three gauges per queue, and in a fleet each read is a Redis call.
type queueStats struct {
	q       queue.Queue
	timeout time.Duration
	mu      sync.Mutex
	at      time.Time
	stats   []queue.Stats
}

func (c *queueStats) of(name string) queue.Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.at) > time.Second {
		ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
		stats, err := c.q.Stats(ctx)
		cancel()
		if err == nil {
			c.stats = stats
		}
		c.at = time.Now()
	}
	for _, s := range c.stats {
		if s.Queue == name {
			return s
		}
	}
	return queue.Stats{Queue: name}
}

func (n *Node) buildQueue() (queue.Queue, error) {
	cfg := n.cfg
	if cfg.Redis == "" {
		return queue.NewMemory(queue.MemoryConfig{
			Workers: cfg.AIWorkers, Timeout: cfg.AITimeout, Backend: queue.Echo{Delay: cfg.EchoDelay},
			Rules: cfg.AI.Rules, MaxWaiting: cfg.AI.MaxWaiting, MaxPerUser: cfg.AI.MaxPerUser, Rooms: n.bus,
		}, n.relay)
	}
	first, _, _ := strings.Cut(cfg.Redis, ",")
	opt, err := fanout.RedisClientOption(strings.TrimSpace(first))
	if err != nil {
		return nil, err
	}
	client, err := rueidis.NewClient(opt)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.RequestTimeout)
	defer cancel()
	q, err := queue.NewRedis(ctx, queue.RedisConfig{
		Client: client, Prefix: cfg.RedisPrefix, Node: cfg.NodeID, Rules: cfg.AI.Rules,
		MaxWaiting: cfg.AI.MaxWaiting, MaxPerUser: cfg.AI.MaxPerUser, Rooms: n.bus,
	}, n.relay)
	if err != nil {
		client.Close()
		return nil, err
	}
	return &closingQueue{Queue: q, close: client.Close}, nil
}

// closingQueue closes the queue's own Redis client with the queue.
type closingQueue struct {
	queue.Queue
	close func()
}

func (q *closingQueue) Close() error {
	err := q.Queue.Close()
	q.close()
	return err
}

// aiRelay takes the answers of this node's jobs to the connections that
// wait for them: the asker, a connection that resumed the job after a
// reconnect, one that cancelled it. It is the queue's Sink; with the
// fleet queue the workers' chunks reach it through the Bus (addressed).
// Room answers do not pass here: the queue relays them to the room's
// members on every node, and the relay only serves recipients that are
// not members.
//
// Every recipient has a queue.Cursor, so that a resume (which replays
// stored chunks, then waits for live ones) and the live stream never send
// one chunk twice, and a chunk lost on the way is filled from the stored
// answer (or the recipient gets ai-error), never skipped.
type aiRelay struct {
	n    *Node
	mu   sync.Mutex
	jobs map[string]*relayJob
}

// relayJob holds a job's recipients on this node. Its lock orders what a
// recipient is sent: "queued", replays, live chunks.
type relayJob struct {
	mu         sync.Mutex
	room       string
	recipients map[*netloop.Conn]*recipient
	ended      bool // the job is gone from the map
}

type recipient struct {
	cur     queue.Cursor
	endOnly bool // a canceller: only the end of the job
}

func newRelay(n *Node) *aiRelay {
	return &aiRelay{n: n, jobs: make(map[string]*relayJob)}
}

// lockJob returns the job's relay state, created if need be, locked.
func (a *aiRelay) lockJob(id string) *relayJob {
	for {
		a.mu.Lock()
		rj := a.jobs[id]
		if rj == nil {
			rj = &relayJob{recipients: make(map[*netloop.Conn]*recipient)}
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

// endIfIdle removes a job nobody here waits for. Called with rj.mu held.
func (a *aiRelay) endIfIdle(id string, rj *relayJob) {
	if len(rj.recipients) == 0 {
		a.end(id, rj)
	}
}

// start registers the asker of a new job (unless it streams to a room)
// and runs enqueue, which sends "queued", while holding the job: no chunk
// can overtake "queued".
func (a *aiRelay) start(s *session, job *queue.Job, enqueue func() error) error {
	rj := a.lockJob(job.ID)
	defer rj.mu.Unlock()
	rj.room = job.Room
	if job.Room == "" {
		rj.recipients[s.conn] = &recipient{cur: queue.NewCursor(-1)}
		s.addJob(job.ID)
	}
	err := enqueue()
	if err != nil {
		a.end(job.ID, rj)
	} else {
		a.endIfIdle(job.ID, rj)
	}
	return err
}

// cancel makes the canceller a recipient of the job's end (unless it
// waits for the job already, or is a member of its room), then runs
// cancelJob, whose failure report (OnFailed) reaches it.
func (a *aiRelay) cancel(s *session, job *queue.Job, cancelJob func() error) error {
	rj := a.lockJob(job.ID)
	rj.room = job.Room
	_, was := rj.recipients[s.conn]
	added := !was && !a.member(rj, s.conn)
	if added {
		rj.recipients[s.conn] = &recipient{endOnly: true}
	}
	rj.mu.Unlock()
	// Not under rj.mu: a queue reports the end (OnFailed) from Cancel.
	err := cancelJob()
	if rj := a.lookup(job.ID); rj != nil {
		if err != nil && added {
			delete(rj.recipients, s.conn)
		}
		a.endIfIdle(job.ID, rj)
		rj.mu.Unlock()
	}
	return err
}

// resume replays a job's chunks after seq to s and, while the job runs,
// makes s a recipient of the rest. The caller checked that s may resume
// it; attach reads the stored answer (moving the job's live stream to
// this node unless s gets it with the room).
func (a *aiRelay) resume(s *session, job *queue.Job, seq int, attach func() (queue.Answer, error)) error {
	rj := a.lockJob(job.ID)
	defer rj.mu.Unlock()
	rj.room = job.Room
	ans, err := attach()
	if err != nil {
		a.endIfIdle(job.ID, rj)
		return err
	}
	j := &ans.Job
	for _, c := range ans.Chunks {
		s.send(chunkFrame(j, c))
	}
	switch {
	case ans.Ended:
		if len(ans.Chunks) == 0 && ans.Last != nil && ans.Last.Done {
			// The client holds the last chunk already: say again that
			// it was the last.
			s.send(chunkFrame(j, *ans.Last))
		}
		if ans.Failed != "" {
			s.send(aiErrorFrame(j, ans.Failed))
		}
	case a.member(rj, s.conn):
		// A member gets the live chunks with the room.
	default:
		r := rj.recipients[s.conn]
		if r == nil || r.endOnly {
			r = &recipient{cur: queue.NewCursor(seq)}
			rj.recipients[s.conn] = r
		}
		if len(ans.Chunks) > 0 {
			r.cur.Replayed(ans.Chunks)
		}
		s.addJob(job.ID)
	}
	a.endIfIdle(job.ID, rj)
	return nil
}

// member: s gets the job's answer with its room.
func (a *aiRelay) member(rj *relayJob, c *netloop.Conn) bool {
	return rj.room != "" && a.n.hub.IsMember(rj.room, c)
}

// forget drops a closed connection from the jobs it was waiting for; a
// job nobody here waits for any more is detached, so that the queue
// cancels it unless it is resumed within the grace period.
func (a *aiRelay) forget(c *netloop.Conn, jobs []string) {
	for _, id := range jobs {
		rj := a.lookup(id)
		if rj == nil {
			continue
		}
		delete(rj.recipients, c)
		idle := len(rj.recipients) == 0
		if idle {
			a.end(id, rj)
		}
		rj.mu.Unlock()
		if idle {
			go func() { // off netloop's pool: it is a Redis call in a fleet
				ctx, cancel := context.WithTimeout(context.Background(), a.n.cfg.RequestTimeout)
				defer cancel()
				_ = a.n.ai.Detach(ctx, id)
			}()
		}
	}
}

// addressed takes a payload a worker sent to this node (Bus.SendToNode):
// a queue.Event, which the relay handles as the in-process queue's
// chunks.
func (a *aiRelay) addressed(payload []byte) {
	if err := queue.Dispatch(payload, a); err != nil {
		a.n.log.Debug("dropped an addressed payload", "err", err)
	}
}

// OnChunk implements queue.Sink.
func (a *aiRelay) OnChunk(job *queue.Job, c queue.Chunk) {
	m := a.n.metrics
	if c.Seq == 0 && c.Attempt <= 1 {
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
	j := &queue.Job{ID: job.ID, Room: rj.room}
	fill := func(after int) ([]queue.Chunk, error) {
		ctx, cancel := context.WithTimeout(context.Background(), a.n.cfg.RequestTimeout)
		defer cancel()
		ans, err := a.n.ai.Answer(ctx, job.ID, after)
		return ans.Chunks, err
	}
	for conn, r := range rj.recipients {
		if r.endOnly || a.member(rj, conn) {
			continue
		}
		send, err := r.cur.Next(c, fill)
		if errors.Is(err, queue.ErrGap) {
			conn.Send(aiErrorFrame(j, queue.ErrGap.Error()))
			delete(rj.recipients, conn)
			conn.Session().(*session).removeJob(job.ID)
			continue
		}
		for _, sc := range send {
			conn.Send(chunkFrame(j, sc))
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
	f := aiErrorFrame(&queue.Job{ID: job.ID, Room: rj.room}, reason)
	for conn := range rj.recipients {
		if !a.member(rj, conn) {
			conn.Send(f)
		}
	}
	a.end(job.ID, rj)
}

// connRef names the asker's connection in the job (for operators) without
// giving away its secret id: a hash of it.
func (n *Node) connRef(s *session) string {
	id := n.connSecret(s.conn)
	sum := sha256.Sum256(id[:])
	return hex.EncodeToString(sum[:8])
}

// chunkFrame and aiErrorFrame are the queue's frames (the same bytes a
// worker relays to a room), framed for one connection.
func chunkFrame(job *queue.Job, c queue.Chunk) []byte {
	return frame.New(ws.OpText, queue.ChunkFrame(job, c))
}

func aiErrorFrame(job *queue.Job, reason string) []byte {
	return frame.New(ws.OpText, queue.ErrorFrame(job, reason))
}
