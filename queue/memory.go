package queue

import (
	"context"
	"errors"
	"sync"
	"time"
)

// MemoryConfig tunes a Memory queue; the zero value means the defaults.
type MemoryConfig struct {
	Name    string        // the queue's name; "default"
	Workers int           // concurrent jobs; 4
	Timeout time.Duration // longest a job may run; 2 minutes
	Retain  time.Duration // how long an ended job's answer stays for resume; 10 minutes
	Backend Backend       // required
}

// Memory is an in-process queue with its own worker goroutines.
type Memory struct {
	cfg  MemoryConfig
	sink Sink

	mu      sync.Mutex
	waiting []*memJob
	jobs    map[string]*memJob
	running int
	avg     time.Duration // moving average of a job's run time, for wait estimates
	closed  bool

	wake chan struct{}
	stop chan struct{}
	wg   sync.WaitGroup
}

type memJob struct {
	job     Job
	chunks  []Chunk
	cancel  context.CancelFunc // set while running
	ended   bool
	failed  string
	endedAt time.Time
}

// NewMemory starts a Memory queue whose workers report to sink.
func NewMemory(cfg MemoryConfig, sink Sink) (*Memory, error) {
	if cfg.Backend == nil {
		return nil, errors.New("queue: a backend is required")
	}
	if cfg.Name == "" {
		cfg.Name = "default"
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
	q := &Memory{
		cfg:  cfg,
		sink: sink,
		jobs: make(map[string]*memJob),
		avg:  time.Second,
		wake: make(chan struct{}, cfg.Workers),
		stop: make(chan struct{}),
	}
	q.wg.Add(cfg.Workers + 1)
	for range cfg.Workers {
		go q.work()
	}
	go q.expire()
	return q, nil
}

// Enqueue implements Queue.
func (q *Memory) Enqueue(_ context.Context, job *Job) (Ticket, error) {
	if job.ID == "" {
		job.ID = NewID()
	}
	if job.Created.IsZero() {
		job.Created = time.Now()
	}
	job.Queue = q.cfg.Name
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return Ticket{}, errors.New("queue: closed")
	}
	ahead := len(q.waiting)
	t := Ticket{Position: ahead}
	if q.running+ahead >= q.cfg.Workers {
		// Every worker is busy: this job starts when the jobs ahead of it
		// and one running job have finished, a worker's share at a time.
		t.EstimatedWait = time.Duration(ahead/q.cfg.Workers+1) * q.avg
	}
	j := &memJob{job: *job}
	q.waiting = append(q.waiting, j)
	q.jobs[job.ID] = j
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return t, nil
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
		q.run(ctx, j)
		cancel()

		q.mu.Lock()
		q.running--
		q.avg = (q.avg*7 + time.Since(start)) / 8
		q.mu.Unlock()
	}
}

// run streams one job. The chunk before the last is held back until the
// next one arrives, so that the last chunk can carry Done.
func (q *Memory) run(ctx context.Context, j *memJob) {
	var held *Chunk
	seq := 0
	emit := func(content string) error {
		if held != nil {
			q.publish(j, *held)
		}
		held = &Chunk{Job: j.job.ID, Seq: seq, Content: content}
		seq++
		return ctx.Err()
	}
	err := q.cfg.Backend.Stream(ctx, &j.job, emit)
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		q.fail(ctx, j, err)
		return
	}
	if held == nil {
		held = &Chunk{Job: j.job.ID} // an empty answer is one empty last chunk
	}
	held.Done = true
	q.publish(j, *held)
}

func (q *Memory) publish(j *memJob, c Chunk) {
	q.mu.Lock()
	if j.ended { // cancelled while the backend was still producing
		q.mu.Unlock()
		return
	}
	j.chunks = append(j.chunks, c)
	if c.Done {
		j.ended, j.endedAt, j.cancel = true, time.Now(), nil
	}
	q.mu.Unlock()
	q.sink.OnChunk(&j.job, c)
}

func (q *Memory) fail(ctx context.Context, j *memJob, err error) {
	reason := err.Error()
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		reason = ReasonTimeout
	case errors.Is(ctx.Err(), context.Canceled):
		reason = ReasonCancelled
	}
	q.end(j, reason)
}

// end marks j ended and reports reason, once.
func (q *Memory) end(j *memJob, reason string) {
	q.mu.Lock()
	if j.ended {
		q.mu.Unlock()
		return
	}
	j.ended, j.failed, j.endedAt = true, reason, time.Now()
	q.mu.Unlock()
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
	a := Answer{Job: j.job, Ended: j.ended, Failed: j.failed}
	if n := len(j.chunks); n > 0 {
		last := j.chunks[n-1]
		a.Last = &last
		a.Chunks = append([]Chunk(nil), j.chunks[min(max(after+1, 0), n):]...)
	}
	return a, nil
}

// Stats implements Queue.
func (q *Memory) Stats(context.Context) ([]Stats, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return []Stats{{Queue: q.cfg.Name, Length: len(q.waiting), Pending: q.running, Consumers: q.cfg.Workers}}, nil
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
	}
	q.mu.Unlock()
	close(q.stop)
	q.wg.Wait()
	return nil
}
