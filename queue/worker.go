package queue

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/redis/rueidis"
)

// Transport carries a worker's output: room answers to every member, and
// chunks for one asker to its node (fanout.Bus does both).
type Transport interface {
	Rooms
	SendToNode(ctx context.Context, node string, payload []byte) error
}

// WorkerConfig configures a Worker; the zero value of each field but
// Client, Backend and Transport means the default.
type WorkerConfig struct {
	Client      rueidis.Client // the queue's Redis; required, closed by the caller
	Prefix      string         // key prefix; DefaultPrefix
	Consumer    string         // this worker's name in the group; host, pid and a random suffix
	Queues      []string       // queues to answer; every queue of DefaultRules
	Concurrency int            // jobs answered at once; 16
	Backend     Backend        // required
	Model       string         // model of jobs that name none
	Transport   Transport      // required
	// VisibilityTimeout: a job whose worker has not refreshed it for this
	// long is taken by another worker (30s). A live worker refreshes its
	// jobs every third of it.
	VisibilityTimeout time.Duration
	MaxAttempts       int           // attempts before a job is dead-lettered; 3
	Grace             time.Duration // how long a job whose asker left waits for a resume; DefaultGrace
	Timeout           time.Duration // longest one attempt may take; 2 minutes
	Retain            time.Duration // how long answers stay for resume; 10 minutes
	RetryBackoff      time.Duration // pause before retrying a transient failure, times the attempt; 500ms
	Metrics           *metrics.Set  // where the worker's metrics go; none when nil
}

// Worker answers jobs from Redis Streams: XREADGROUP on rueidis' dedicated
// blocking connections, at most Concurrency at once, XACK when done. It
// reclaims the jobs of dead workers (XAUTOCLAIM after VisibilityTimeout)
// and keeps its own fresh (XCLAIM JUSTID), so a long answer is never taken
// from a live worker. Run blocks; the methods are safe for concurrent use.
type Worker struct {
	cfg   WorkerConfig
	k     keys
	slots chan struct{}
	m     *workerMetrics

	mu      sync.Mutex
	running map[string]*runningJob // by job id
	wg      sync.WaitGroup
}

// runningJob is one job a worker is answering.
type runningJob struct {
	job    Job
	entry  string // stream entry id
	cancel context.CancelCauseFunc
	grace  *time.Timer // the asker left; nil otherwise
	// sends are the job's stored chunks on their way to a room or node,
	// in order, by one goroutine: the next chunk is stored while the one
	// before is published, one Redis round trip per chunk instead of two.
	sends chan func()
}

// sendQueue is how many stored chunks of one job may wait to be
// published before the job's backend waits.
const sendQueue = 64

// Causes that stop a running attempt.
var (
	errCancelled = errors.New(ReasonCancelled)
	errAskerGone = errors.New("the asker left and did not resume")
	errStale     = errors.New("another worker took the job over")
	errEnded     = errors.New("the job ended elsewhere")
)

// NewWorker checks cfg and creates the groups of its queues.
func NewWorker(ctx context.Context, cfg WorkerConfig) (*Worker, error) {
	if cfg.Client == nil || cfg.Backend == nil || cfg.Transport == nil {
		return nil, errors.New("queue: a worker needs a Redis client, a backend and a transport")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if cfg.Consumer == "" {
		host, _ := os.Hostname()
		cfg.Consumer = fmt.Sprintf("%s-%d-%04x", host, os.Getpid(), rand.N(1<<16))
	}
	if len(cfg.Queues) == 0 {
		cfg.Queues = DefaultRules().Queues()
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 16
	}
	if cfg.VisibilityTimeout <= 0 {
		cfg.VisibilityTimeout = 30 * time.Second
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 3
	}
	if cfg.Grace <= 0 {
		cfg.Grace = DefaultGrace
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Minute
	}
	if cfg.Retain <= 0 {
		cfg.Retain = 10 * time.Minute
	}
	if cfg.RetryBackoff <= 0 {
		cfg.RetryBackoff = 500 * time.Millisecond
	}
	w := &Worker{cfg: cfg, k: keys{cfg.Prefix}, slots: make(chan struct{}, cfg.Concurrency), running: map[string]*runningJob{}}
	w.m = newWorkerMetrics(cfg.Metrics, w)
	if err := createGroups(ctx, cfg.Client, w.k, cfg.Queues); err != nil {
		return nil, err
	}
	// Known to every queue's group from the start, so /api/queues counts
	// this worker before it gets a job.
	c := cfg.Client
	for _, q := range cfg.Queues {
		if err := c.Do(ctx, c.B().XgroupCreateconsumer().Key(w.k.jobs(q)).Group(Group).Consumer(cfg.Consumer).Build()).Error(); err != nil {
			return nil, fmt.Errorf("queue: cannot join the group of %s: %w", q, err)
		}
	}
	return w, nil
}

// Run answers jobs until ctx is done, then waits for the running ones to
// end (they stop with ctx: another worker reclaims them).
func (w *Worker) Run(ctx context.Context) error {
	var bg sync.WaitGroup
	bg.Add(2)
	go func() { defer bg.Done(); w.every(ctx, w.cfg.VisibilityTimeout/3, w.refresh) }()
	go func() { defer bg.Done(); w.control(ctx) }()
	err := w.read(ctx)
	bg.Wait()
	w.wg.Wait()
	w.leave()
	return err
}

// leave takes this worker out of the groups where it holds no pending
// job; one it holds stays for another worker to reclaim.
func (w *Worker) leave() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c := w.cfg.Client
	for _, q := range w.cfg.Queues {
		key := w.k.jobs(q)
		res, err := c.Do(ctx, c.B().Xpending().Key(key).Group(Group).Start("-").End("+").Count(1).Consumer(w.cfg.Consumer).Build()).ToArray()
		if err == nil && len(res) == 0 {
			c.Do(ctx, c.B().XgroupDelconsumer().Key(key).Group(Group).Consumername(w.cfg.Consumer).Build())
		}
	}
}

func (w *Worker) every(ctx context.Context, d time.Duration, fn func(context.Context)) {
	t := time.NewTicker(max(d, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn(ctx)
		}
	}
}

// take waits for one free slot, then takes as many more as are free.
func (w *Worker) take(ctx context.Context) int {
	select {
	case w.slots <- struct{}{}:
	case <-ctx.Done():
		return 0
	}
	n := 1
	for n < cap(w.slots) {
		select {
		case w.slots <- struct{}{}:
			n++
		default:
			return n
		}
	}
	return n
}

func (w *Worker) release(n int) {
	for range n {
		<-w.slots
	}
}

// read takes jobs on the slots it holds: every third of the visibility
// timeout the jobs of dead workers (reclaim), else new ones with
// XREADGROUP on every queue at once, blocking at most until the next
// reclaim is due.
func (w *Worker) read(ctx context.Context) error {
	c := w.cfg.Client
	streams := make([]string, len(w.cfg.Queues))
	ids := make([]string, len(w.cfg.Queues))
	byKey := make(map[string]string, len(w.cfg.Queues))
	for i, q := range w.cfg.Queues {
		streams[i], ids[i] = w.k.jobs(q), ">"
		byKey[streams[i]] = q
	}
	every := max(w.cfg.VisibilityTimeout/3, 10*time.Millisecond)
	block := min(every, 2*time.Second).Milliseconds()
	var reclaimed time.Time
	for {
		n := w.take(ctx)
		if n == 0 {
			return nil
		}
		if time.Since(reclaimed) >= every {
			reclaimed = time.Now()
			if used := w.reclaim(ctx, n); used > 0 {
				w.release(n - used)
				continue
			}
		}
		res, err := c.Do(ctx, c.B().Xreadgroup().Group(Group, w.cfg.Consumer).Count(int64(n)).Block(block).
			Streams().Key(streams...).Id(ids...).Build()).AsXRead()
		if ctx.Err() != nil {
			w.release(n)
			return nil
		}
		if err != nil && !rueidis.IsRedisNil(err) {
			w.release(n)
			time.Sleep(200 * time.Millisecond) // Redis away: rueidis reconnects
			continue
		}
		used := 0
		for key, entries := range res {
			for _, e := range entries {
				w.start(ctx, byKey[key], e, 1)
				used++
			}
		}
		w.release(n - used)
	}
}

// start runs one delivered job on a slot already taken.
func (w *Worker) start(ctx context.Context, queue string, e rueidis.XRangeEntry, deliveries int) {
	job := jobFromFields(e.FieldValues)
	job.Queue, job.Message = queue, e.FieldValues["msg"]
	if job.Model == "" {
		job.Model = w.cfg.Model
	}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		defer w.release(1)
		w.run(ctx, &job, e.ID, deliveries)
	}()
}

// run answers job until it ends, retrying transient failures in place.
func (w *Worker) run(ctx context.Context, job *Job, entry string, deliveries int) {
	stream := w.k.jobs(job.Queue)
	var lastErr error
	for {
		job.Attempt = deliveries
		if deliveries > w.cfg.MaxAttempts {
			w.deadLetter(ctx, job, entry, lastErr)
			return
		}
		err := w.attempt(ctx, job, entry)
		switch {
		case ctx.Err() != nil:
			return // stopping: the entry stays pending for another worker
		case errors.Is(err, errStale):
			return // the entry is another worker's now: not ours to ack
		case errors.Is(err, ErrTransient) && deliveries < w.cfg.MaxAttempts:
			lastErr = err
			select {
			case <-time.After(w.cfg.RetryBackoff * time.Duration(deliveries)):
			case <-ctx.Done():
				return
			}
			// Claiming it again counts a delivery: the attempt number is
			// the delivery count, whoever retries.
			c := w.cfg.Client
			got, cerr := c.Do(ctx, c.B().Xclaim().Key(stream).Group(Group).Consumer(w.cfg.Consumer).MinIdleTime("0").Id(entry).Build()).AsXRange()
			if cerr != nil || len(got) == 0 {
				return
			}
			deliveries++
			continue
		case errors.Is(err, ErrTransient):
			w.deadLetter(ctx, job, entry, err)
			return
		}
		w.ack(ctx, job, entry)
		return
	}
}

// attempt runs one attempt; nil when it is over (done, or failed and
// reported), errStale when another worker owns the job, an ErrTransient
// error worth a retry.
func (w *Worker) attempt(ctx context.Context, job *Job, entry string) error {
	c := w.cfg.Client
	hk := []string{w.k.job(job.ID), w.k.out(job.ID)}
	st, err := scriptState(ctx, c, startScript, hk, []string{strconv.Itoa(job.Attempt), strconv.FormatInt(w.cfg.Retain.Milliseconds(), 10)})
	if err != nil {
		return fmt.Errorf("%w: redis: %v", ErrTransient, err)
	}
	if st[0] != "" {
		return nil // ended (cancelled while waiting) or expired
	}
	reset := st[1] != "0"
	node := st[2]
	actx, cancel := context.WithCancelCause(ctx)
	actx, stop := context.WithTimeout(actx, w.cfg.Timeout)
	defer stop()
	rj := &runningJob{job: *job, entry: entry, cancel: cancel, sends: make(chan func(), sendQueue)}
	sent := make(chan struct{})
	go func() {
		for send := range rj.sends {
			send()
		}
		close(sent)
	}()
	w.mu.Lock()
	w.running[job.ID] = rj
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		delete(w.running, job.ID)
		if rj.grace != nil {
			rj.grace.Stop()
		}
		w.mu.Unlock()
		cancel(nil)
	}()
	if node == "" {
		w.askerGone(rj)
	}
	if reset {
		w.m.reset.Inc()
	}
	store := w.newStorer(actx, rj)
	first, prev := true, time.Now()
	err = answer(actx, w.cfg.Backend, job, reset, func(ch Chunk) error {
		now := time.Now()
		if first {
			w.m.firstChunk.Update(now.Sub(job.Created).Seconds())
			first = false
		} else {
			w.m.chunkGap.Update(now.Sub(prev).Seconds())
		}
		prev = now
		return store.add(ch)
	})
	if serr := store.close(); serr != nil {
		err = serr // why the attempt stopped: the backend only saw its context end
	}
	close(rj.sends)
	<-sent // every chunk is out before the job's end is told
	cause := context.Cause(actx)
	switch {
	case err == nil:
		w.m.job(job.Queue, "done")
		key := w.k.done(job.Queue, time.Now().Unix())
		c.DoMulti(ctx, c.B().Incr().Key(key).Build(), c.B().Expire().Key(key).Seconds(2*throughputWindow).Build())
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(err, errStale):
		return errStale
	case errors.Is(err, errEnded):
		return nil
	case errors.Is(err, errCancelled) || errors.Is(cause, errCancelled):
		w.m.job(job.Queue, "cancelled")
		// The hash says cancelled already; the asker may have moved since
		// the start.
		if now, err := c.Do(ctx, c.B().Hget().Key(w.k.job(job.ID)).Field("node").Build()).ToString(); err == nil {
			node = now
		}
		w.freeUserSlot(ctx, job)
		w.notify(ctx, job, node, ReasonCancelled)
		return nil
	case errors.Is(cause, errAskerGone):
		w.m.job(job.Queue, "cancelled")
		return w.end(ctx, job, stateCancelled, errAskerGone.Error())
	case errors.Is(actx.Err(), context.DeadlineExceeded):
		w.m.job(job.Queue, "timeout")
		return w.end(ctx, job, stateFailed, ReasonTimeout)
	case errors.Is(err, ErrTransient):
		w.m.job(job.Queue, "retried")
		return err
	}
	w.m.job(job.Queue, "failed")
	return w.end(ctx, job, stateFailed, err.Error())
}

// store writes a batch of an attempt's chunks and queues them to be sent
// on; it returns why the attempt must stop, if it must.
func (w *Worker) store(ctx context.Context, rj *runningJob, batch []Chunk) error {
	job := &rj.job
	args := make([]string, 2, 2+4*len(batch))
	args[0], args[1] = strconv.Itoa(job.Attempt), strconv.FormatInt(w.cfg.Retain.Milliseconds(), 10)
	for _, c := range batch {
		args = append(args, strconv.Itoa(c.Seq), c.Content, flag01(c.Done), flag01(c.Reset))
	}
	st, err := scriptState(ctx, w.cfg.Client, chunkScript, []string{w.k.job(job.ID), w.k.out(job.ID)}, args)
	switch {
	case err != nil:
		return fmt.Errorf("cannot store the answer: %w", err)
	case st[0] == stateStale:
		return errStale
	case st[0] == stateCancelled:
		return errCancelled
	case st[0] != "":
		return errEnded
	}
	w.m.chunks.Add(len(batch))
	if batch[len(batch)-1].Done {
		w.freeUserSlot(ctx, job)
	}
	node := st[1]
	if node != "" {
		w.attached(rj)
	} else {
		w.askerGone(rj)
	}
	rj.sends <- func() {
		if job.Room != "" {
			for _, c := range batch { // a frame per chunk, for the members' sockets
				_ = w.cfg.Transport.Relay(ctx, job.Room, ChunkFrame(job, c))
			}
		}
		if node != "" {
			_ = w.cfg.Transport.SendToNode(ctx, node, chunkEvent(job, batch))
		}
	}
	return nil
}

// end records a job's failure and tells its asker.
func (w *Worker) end(ctx context.Context, job *Job, state, reason string) error {
	st, err := scriptState(ctx, w.cfg.Client, endScript, []string{w.k.job(job.ID)}, []string{strconv.Itoa(job.Attempt), state, reason})
	if err != nil {
		return nil // Redis away: the entry is acked, the answer expires
	}
	switch st[0] {
	case stateStale:
		return errStale
	case "":
		w.freeUserSlot(ctx, job)
		if state != stateCancelled || reason != errAskerGone.Error() {
			w.notify(ctx, job, st[1], reason)
		}
	}
	return nil
}

// notify sends the ai-error of a job to its room or node.
func (w *Worker) notify(ctx context.Context, job *Job, node, reason string) {
	if job.Room != "" {
		_ = w.cfg.Transport.Relay(ctx, job.Room, ErrorFrame(job, reason))
	}
	if node != "" {
		_ = w.cfg.Transport.SendToNode(ctx, node, failEvent(job, reason))
	}
}

// deadLetter moves a job that used its attempts to the dead stream.
func (w *Worker) deadLetter(ctx context.Context, job *Job, entry string, cause error) {
	why := "the worker answering it was lost"
	if cause != nil {
		why = cause.Error()
	}
	reason := fmt.Sprintf("gave up after %d attempts: %s", w.cfg.MaxAttempts, why)
	c := w.cfg.Client
	add := c.B().Xadd().Key(w.k.dead()).Maxlen().Almost().Threshold("100000").Id("*").FieldValue().
		FieldValue("msg", job.Message).FieldValue("error", reason).FieldValue("attempts", strconv.Itoa(job.Attempt))
	f := jobFields(job)
	for i := 0; i < len(f); i += 2 {
		add = add.FieldValue(f[i], f[i+1])
	}
	if err := c.Do(ctx, add.Build()).Error(); err != nil {
		return // stays pending: the next reclaim tries again
	}
	w.m.dead.Inc()
	w.m.job(job.Queue, "dead")
	_ = w.end(ctx, job, stateDead, reason)
	w.ack(ctx, job, entry)
}

// ack ends a job in the queue: its entry leaves the group's pending list
// and, whichever way it ended, it no longer counts against its user's cap.
// It runs after the asker was told the end (at least once: a worker lost
// in between leaves the entry to be reclaimed); freeUserSlot freed the
// slot before the telling.
func (w *Worker) ack(ctx context.Context, job *Job, entry string) {
	c := w.cfg.Client
	c.DoMulti(ctx, c.B().Xack().Key(w.k.jobs(job.Queue)).Group(Group).Id(entry).Build(), w.k.freeUserSlot(c, job))
}

// freeUserSlot frees the job's place in its user's cap before the asker can
// see its done or ai-error, so that a client asking again at once is not
// refused for a job that is over.
func (w *Worker) freeUserSlot(ctx context.Context, job *Job) {
	w.cfg.Client.Do(ctx, w.k.freeUserSlot(w.cfg.Client, job))
}

// refresh keeps the pending entries of running jobs from looking idle.
func (w *Worker) refresh(ctx context.Context) {
	byQueue := map[string][]string{}
	w.mu.Lock()
	for _, rj := range w.running {
		byQueue[rj.job.Queue] = append(byQueue[rj.job.Queue], rj.entry)
	}
	w.mu.Unlock()
	c := w.cfg.Client
	for q, ids := range byQueue {
		c.Do(ctx, c.B().Xclaim().Key(w.k.jobs(q)).Group(Group).Consumer(w.cfg.Consumer).MinIdleTime("0").Id(ids...).Justid().Build())
	}
}

// reclaim takes over, on up to free slots, jobs whose worker stopped
// refreshing them, and returns how many it started.
func (w *Worker) reclaim(ctx context.Context, free int) int {
	c := w.cfg.Client
	idle := strconv.FormatInt(w.cfg.VisibilityTimeout.Milliseconds(), 10)
	used := 0
	for _, q := range w.cfg.Queues {
		if used == free {
			break
		}
		res, err := c.Do(ctx, c.B().Xautoclaim().Key(w.k.jobs(q)).Group(Group).Consumer(w.cfg.Consumer).
			MinIdleTime(idle).Start("0-0").Count(int64(free-used)).Build()).ToArray()
		if err != nil || len(res) < 2 {
			continue
		}
		entries, err := res[1].AsXRange()
		if err != nil {
			continue
		}
		for _, e := range entries {
			if len(e.FieldValues) == 0 {
				continue // trimmed from the stream
			}
			w.m.reclaimed.Inc()
			w.start(ctx, q, e, w.deliveries(ctx, q, e.ID))
			used++
		}
	}
	return used
}

// deliveries is the delivery count of a pending entry.
func (w *Worker) deliveries(ctx context.Context, queue, entry string) int {
	c := w.cfg.Client
	res, err := c.Do(ctx, c.B().Xpending().Key(w.k.jobs(queue)).Group(Group).Start(entry).End(entry).Count(1).Build()).ToArray()
	if err == nil && len(res) == 1 {
		if row, err := res[0].ToArray(); err == nil && len(row) == 4 {
			if n, err := row[3].AsInt64(); err == nil {
				return int(n)
			}
		}
	}
	return 2 // it was delivered before, at least
}

// control follows the cancels and departures nodes announce.
func (w *Worker) control(ctx context.Context) {
	c := w.cfg.Client
	for ctx.Err() == nil {
		_ = c.Receive(ctx, c.B().Subscribe().Channel(w.k.ctl()).Build(), func(m rueidis.PubSubMessage) {
			verb, id, _ := strings.Cut(m.Message, " ")
			w.mu.Lock()
			rj := w.running[id]
			w.mu.Unlock()
			if rj == nil {
				return
			}
			switch verb {
			case "cancel":
				rj.cancel(errCancelled)
			case "detach":
				w.askerGone(rj)
			}
		})
		if ctx.Err() == nil {
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// askerGone starts the grace period of a job whose asker left: unless a
// resume gives it a node again, it is cancelled. Room answers go on.
func (w *Worker) askerGone(rj *runningJob) {
	if rj.job.Room != "" {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if rj.grace != nil {
		return
	}
	rj.grace = time.AfterFunc(w.cfg.Grace, func() {
		c := w.cfg.Client
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		node, err := c.Do(ctx, c.B().Hget().Key(w.k.job(rj.job.ID)).Field("node").Build()).ToString()
		if err == nil && node == "" {
			rj.cancel(errAskerGone)
			return
		}
		w.attached(rj)
	})
}

// attached stops the grace period of a resumed job.
func (w *Worker) attached(rj *runningJob) {
	w.mu.Lock()
	if rj.grace != nil {
		rj.grace.Stop()
		rj.grace = nil
	}
	w.mu.Unlock()
}

// Running is the number of jobs being answered.
func (w *Worker) Running() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.running)
}
