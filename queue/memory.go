package queue

import (
	"context"
	"errors"
	"sync"
	"time"
)

// MemoryConfig tunes a Memory queue; the zero value means the defaults.
type MemoryConfig struct {
	Workers    int           // concurrent jobs; 4
	Timeout    time.Duration // longest a job may run; 2 minutes
	Retain     time.Duration // how long an ended job's answer stays for resume; 10 minutes
	Grace      time.Duration // how long a job whose asker left waits for a resume; DefaultGrace
	MaxWaiting int           // jobs waiting for a worker beyond which Enqueue says ErrFull; DefaultMaxWaiting
	MaxPerUser int           // jobs one user may have waiting or running (ErrUserLimit); DefaultMaxPerUser
	Rules      *Rules        // routing; DefaultRules
	Rooms      Rooms         // carries room answers; required for jobs with a Room
	Backend    Backend       // required
}

// Defaults shared by the queues.
const (
	DefaultGrace      = 10 * time.Second
	DefaultMaxWaiting = 10000
	DefaultMaxPerUser = 20
)

// Memory is an in-process queue with its own worker goroutines: the AI of
// the single node. Its jobs' queue names come from the Rules (for the
// metrics and the model), but one pool of workers takes them in order.
type Memory struct {
	cfg  MemoryConfig
	sink Sink

	mu      sync.Mutex
	waiting []*memJob
	jobs    map[string]*memJob
	users   map[string]int // jobs waiting or running per owner
	running int
	avg     time.Duration // moving average of a job's run time, for wait estimates
	closed  bool

	wake chan struct{}
	stop chan struct{}
	wg   sync.WaitGroup
}

type memJob struct {
	job      Job
	chunks   []Chunk
	cancel   context.CancelFunc // set while running
	ended    bool
	failed   string
	endedAt  time.Time
	detached *time.Timer // the asker left: cancel unless attached again
}

// NewMemory starts a Memory queue whose workers report to sink.
func NewMemory(cfg MemoryConfig, sink Sink) (*Memory, error) {
	if cfg.Backend == nil {
		return nil, errors.New("queue: a backend is required")
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 4
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Minute
	}
	if cfg.Retain <= 0 {
		cfg.Retain = 10 * time.Minute
	}
	if cfg.Grace <= 0 {
		cfg.Grace = DefaultGrace
	}
	if cfg.MaxWaiting <= 0 {
		cfg.MaxWaiting = DefaultMaxWaiting
	}
	if cfg.MaxPerUser <= 0 {
		cfg.MaxPerUser = DefaultMaxPerUser
	}
	if cfg.Rules == nil {
		cfg.Rules = DefaultRules()
	}
	q := &Memory{
		cfg:   cfg,
		sink:  sink,
		jobs:  make(map[string]*memJob),
		users: make(map[string]int),
		avg:   time.Second,
		wake:  make(chan struct{}, cfg.Workers),
		stop:  make(chan struct{}),
	}
	q.wg.Add(cfg.Workers + 1)
	for range cfg.Workers {
		go q.work()
	}
	go q.expire()
	return q, nil
}

// Enqueue implements Queue.
func (q *Memory) Enqueue(_ context.Context, job *Job, accepted func(Ticket)) error {
	if job.ID == "" {
		job.ID = NewID()
	}
	if job.Created.IsZero() {
		job.Created = time.Now()
	}
	q.cfg.Rules.route(job)
	job.Attempt = 1
	q.mu.Lock()
	defer q.mu.Unlock()
	switch {
	case q.closed:
		return ErrClosed
	case len(q.waiting) >= q.cfg.MaxWaiting:
		return ErrFull
	case q.users[job.Owner] >= q.cfg.MaxPerUser:
		return ErrUserLimit
	}
	ahead := len(q.waiting)
	t := Ticket{Position: ahead}
	if q.running+ahead >= q.cfg.Workers {
		// Every worker is busy: this job starts when the jobs ahead of it
		// and one running job have finished, a worker's share at a time,
		// each taking the measured average.
		t.EstimatedWait = time.Duration(ahead/q.cfg.Workers+1) * q.avg
	}
	accepted(t) // under q.mu: no worker sees the job yet
	j := &memJob{job: *job}
	q.waiting = append(q.waiting, j)
	q.jobs[job.ID] = j
	q.users[job.Owner]++
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return nil
}

func (q *Memory) work() {
	defer q.wg.Done()
	for {
		q.mu.Lock()
		for len(q.waiting) == 0 && !q.closed {
			q.mu.Unlock()
			select {
			case <-q.wake:
			case <-q.stop:
				return
			}
			q.mu.Lock()
		}
		if q.closed {
			q.mu.Unlock()
			return
		}
		j := q.waiting[0]
		q.waiting[0] = nil
		q.waiting = q.waiting[1:]
		ctx, cancel := context.WithTimeout(context.Background(), q.cfg.Timeout)
		j.cancel = cancel
		q.running++
		q.mu.Unlock()

		start := time.Now()
		err := answer(ctx, q.cfg.Backend, &j.job, false, func(c Chunk) error { q.publish(j, c); return nil })
		if err != nil {
			q.end(j, failReason(ctx, err))
		}
		cancel()

		q.mu.Lock()
		q.running--
		q.avg = (q.avg*7 + time.Since(start)) / 8
		q.mu.Unlock()
	}
}

// failReason is what ai-error says of a job that stopped with err.
func failReason(ctx context.Context, err error) string {
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return ReasonTimeout
	case errors.Is(ctx.Err(), context.Canceled):
		return ReasonCancelled
	}
	return err.Error()
}

func (q *Memory) publish(j *memJob, c Chunk) {
	q.mu.Lock()
	if j.ended { // cancelled while the backend was still producing
		q.mu.Unlock()
		return
	}
	j.chunks = append(j.chunks, c)
	if c.Done {
		q.finish(j, "")
	}
	q.mu.Unlock()
	if j.job.Room != "" {
		_ = q.cfg.Rooms.Relay(context.Background(), j.job.Room, ChunkFrame(&j.job, c))
	}
	q.sink.OnChunk(&j.job, c)
}

// finish marks j ended; called with q.mu held.
func (q *Memory) finish(j *memJob, reason string) {
	j.ended, j.failed, j.endedAt, j.cancel = true, reason, time.Now(), nil
	if j.detached != nil {
		j.detached.Stop()
	}
	if q.users[j.job.Owner]--; q.users[j.job.Owner] <= 0 {
		delete(q.users, j.job.Owner)
	}
}

// end marks j ended and reports reason, once.
func (q *Memory) end(j *memJob, reason string) {
	q.mu.Lock()
	if j.ended {
		q.mu.Unlock()
		return
	}
	q.finish(j, reason)
	q.mu.Unlock()
	if j.job.Room != "" {
		_ = q.cfg.Rooms.Relay(context.Background(), j.job.Room, ErrorFrame(&j.job, reason))
	}
	q.sink.OnFailed(&j.job, reason)
}

// Cancel implements Queue.
func (q *Memory) Cancel(_ context.Context, id string) (*Job, error) {
	q.mu.Lock()
	j := q.jobs[id]
	if j == nil || j.ended {
		q.mu.Unlock()
		return nil, ErrNotFound
	}
	for i, w := range q.waiting {
		if w == j {
			q.waiting = append(q.waiting[:i], q.waiting[i+1:]...)
			break
		}
	}
	if j.cancel != nil {
		j.cancel()
	}
	q.mu.Unlock()
	q.end(j, ReasonCancelled)
	return &j.job, nil
}

// Answer implements Queue.
func (q *Memory) Answer(_ context.Context, id string, after int) (Answer, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	j := q.jobs[id]
	if j == nil {
		return Answer{}, ErrNotFound
	}
	return answerAfter(j.job, j.chunks, after, j.ended, j.failed), nil
}

// Attach implements Queue: one node holds every job, so it is Answer,
// and it stops the grace timer of a Detach.
func (q *Memory) Attach(ctx context.Context, id string, after int) (Answer, error) {
	q.mu.Lock()
	if j := q.jobs[id]; j != nil && j.detached != nil {
		j.detached.Stop()
		j.detached = nil
	}
	q.mu.Unlock()
	return q.Answer(ctx, id, after)
}

// Detach implements Queue.
func (q *Memory) Detach(_ context.Context, id string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	j := q.jobs[id]
	if j == nil || j.ended {
		return nil
	}
	if j.detached != nil {
		j.detached.Stop()
	}
	j.detached = time.AfterFunc(q.cfg.Grace, func() {
		q.mu.Lock()
		still := j.detached != nil && !j.ended
		q.mu.Unlock()
		if still {
			_, _ = q.Cancel(context.Background(), id)
		}
	})
	return nil
}

// Stats implements Queue.
func (q *Memory) Stats(context.Context) ([]Stats, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	byName := map[string]*Stats{}
	var out []Stats
	for _, name := range q.cfg.Rules.Queues() {
		out = append(out, Stats{Queue: name, Consumers: q.cfg.Workers})
	}
	for i := range out {
		byName[out[i].Queue] = &out[i]
	}
	for _, j := range q.jobs {
		s := byName[j.job.Queue]
		switch {
		case s == nil || j.ended:
		case j.cancel != nil:
			s.Pending++
		default:
			s.Length++
		}
	}
	return out, nil
}

// expire forgets ended jobs after the retention time.
func (q *Memory) expire() {
	defer q.wg.Done()
	t := time.NewTicker(min(q.cfg.Retain/4, time.Minute))
	defer t.Stop()
	for {
		select {
		case <-q.stop:
			return
		case now := <-t.C:
			q.mu.Lock()
			for id, j := range q.jobs {
				if j.ended && now.Sub(j.endedAt) > q.cfg.Retain {
					delete(q.jobs, id)
				}
			}
			q.mu.Unlock()
		}
	}
}

// Close implements Queue.
func (q *Memory) Close() error {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return nil
	}
	q.closed = true
	for _, j := range q.jobs {
		if j.cancel != nil {
			j.cancel()
		}
		if j.detached != nil {
			j.detached.Stop()
		}
	}
	q.mu.Unlock()
	close(q.stop)
	q.wg.Wait()
	return nil
}
