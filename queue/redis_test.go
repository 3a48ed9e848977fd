package queue

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/edgehub/edgehub/fanout"
	"github.com/edgehub/edgehub/fanout/redistest"
	"github.com/edgehub/edgehub/queue/llmtest"
)

// The fleet queue against a real redis-server, with the real Redis bus
// carrying the workers' chunks to the nodes. Each test has its own key
// prefix on its own server.

var prefixes atomic.Int64

type fleetEnv struct {
	t      *testing.T
	srv    *redistest.Server
	prefix string
}

func newFleet(t *testing.T) *fleetEnv {
	t.Helper()
	return &fleetEnv{t: t, srv: redistest.Start(t), prefix: fmt.Sprintf("qt%d", prefixes.Add(1))}
}

func (f *fleetEnv) client() rueidis.Client {
	f.t.Helper()
	opt, err := fanout.RedisClientOption(f.srv.URL())
	if err != nil {
		f.t.Fatal(err)
	}
	c, err := rueidis.NewClient(opt)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(c.Close)
	return c
}

// receiver is a node's end of the bus: addressed AI events go to its sink.
type receiver struct{ sink Sink }

func (r receiver) Deliver(*fanout.Message)  {}
func (r receiver) Relayed(string, []byte)   {}
func (r receiver) Addressed(payload []byte) { _ = Dispatch(payload, r.sink) }
func (f *fleetEnv) bus(node string, recv fanout.Receiver) fanout.Bus {
	f.t.Helper()
	b, err := fanout.NewRedis(fanout.RedisConfig{URLs: f.srv.URL(), Prefix: f.prefix, NodeID: node}, recv)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { b.Close() })
	return b
}

// node is the node side of the queue with its sink.
func (f *fleetEnv) node(id string) (*Redis, *sink) {
	f.t.Helper()
	s := newSink()
	bus := f.bus(id, receiver{s})
	q, err := NewRedis(context.Background(), RedisConfig{Client: f.client(), Prefix: f.prefix, Node: id, Rooms: bus}, s)
	if err != nil {
		f.t.Fatal(err)
	}
	return q, s
}

// worker runs a worker until the returned stop is called (or the test
// ends); stop leaves its jobs pending, as a worker that died would.
func (f *fleetEnv) worker(cfg WorkerConfig) (stop func()) {
	f.t.Helper()
	cfg.Client, cfg.Prefix = f.client(), f.prefix
	cfg.Transport = f.bus("worker-"+cfg.Consumer, nil)
	w, err := NewWorker(context.Background(), cfg)
	if err != nil {
		f.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	f.t.Cleanup(stop)
	return stop
}

func (s *sink) got(id string) ([]Chunk, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Chunk(nil), s.chunks[id]...), s.failed[id]
}

// text is the answer a client holding cs shows: a reset drops what came
// before.
func text(t *testing.T, cs []Chunk) string {
	t.Helper()
	var words []string
	next := 0
	for _, c := range cs {
		if c.Reset {
			words, next = nil, 0
		}
		if c.Seq != next {
			t.Fatalf("seq %d after %d: %+v", c.Seq, next-1, cs)
		}
		next++
		words = append(words, c.Content)
	}
	return strings.Join(words, "")
}

func ask(t *testing.T, q Queue, job *Job) Ticket {
	t.Helper()
	return enqueue(t, q, job)
}

func TestRedisAnswersReachTheAskersNode(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	qa, sa := f.node("a")
	_, sb := f.node("b")
	f.worker(WorkerConfig{Consumer: "w1", Backend: Echo{}})
	f.worker(WorkerConfig{Consumer: "w2", Backend: Echo{}})
	var jobs []*Job
	for i := range 20 {
		job := &Job{Message: fmt.Sprintf("question %d with some more words in it, long enough not to be short, number %d", i, i), Owner: "u"}
		ask(t, qa, job)
		jobs = append(jobs, job)
	}
	for _, job := range jobs {
		sa.waitEnd(t, job.ID)
		cs, failed := sa.got(job.ID)
		want := strings.Join(strings.Fields(job.Message), "")
		if failed != "" || text(t, cs) != want || !cs[len(cs)-1].Done {
			t.Fatalf("job %s: %q failed %q, want %q", job.ID, text(t, cs), failed, want)
		}
		if other, _ := sb.got(job.ID); len(other) != 0 {
			t.Fatalf("node b got chunks of node a's job")
		}
		a, err := qa.Answer(context.Background(), job.ID, 2)
		if err != nil || !a.Ended || a.Failed != "" || len(a.Chunks) != len(cs)-3 || a.Job.Owner != "u" {
			t.Fatalf("Answer after 2: %+v, %v", a, err)
		}
	}
	waitStats(t, qa, func(st []Stats) bool {
		for _, s := range st {
			if s.Consumers != 2 || s.Length != 0 || s.Pending != 0 {
				return false
			}
		}
		return len(st) == len(DefaultRules().Queues())
	}, "2 workers on every queue, nothing waiting or pending")
}

// waitStats polls q's Stats until ok holds. A worker acknowledges a job
// just after its asker was told the end, so the pending list empties a
// moment after the last chunk; the timeout bounds the wait.
func waitStats(t *testing.T, q *Redis, ok func([]Stats) bool, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := q.Stats(context.Background())
		if err == nil && ok(st) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Stats %+v, %v: want %s", st, err, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRedisRoutesByContent(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	q, s := f.node("a")
	llm := llmtest.Start(t, llmtest.Behavior{Answer: "ok"})
	f.worker(WorkerConfig{Consumer: "code", Queues: []string{"code"}, Backend: NewOpenAI(BackendConfig{BaseURL: llm.OpenAIURL(), APIKey: "k"})})
	job := &Job{Message: "Why does this Go function not compile? ```func f() int {}```"}
	ask(t, q, job)
	s.waitEnd(t, job.ID)
	want := DefaultRules().Route(job.Message)
	if job.Queue != "code" || want.Queue != "code" || job.Model != want.Model {
		t.Fatalf("job routed to %q with model %q; rules say %+v", job.Queue, job.Model, want)
	}
	r := llm.Next(5 * time.Second)
	if r == nil || r.Model != want.Model {
		t.Fatalf("the backend was asked %+v, want model %q", r, want.Model)
	}
	if n := f.srv.MustDo("XLEN", f.prefix+":jobs:{code}"); n != "1" {
		t.Fatalf("XLEN of the code queue = %s", n)
	}
}

func TestRedisReclaimsTheJobOfADeadWorker(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	q, s := f.node("a")
	const visibility = 300 * time.Millisecond
	slow := Echo{Delay: 40 * time.Millisecond}
	stop1 := f.worker(WorkerConfig{Consumer: "dies", Backend: slow, VisibilityTimeout: visibility})
	job := &Job{Message: strings.Repeat("word ", 30) + "end"}
	ask(t, q, job)
	deadline := time.Now().Add(5 * time.Second)
	for { // a few chunks of the first attempt
		if cs, _ := s.got(job.ID); len(cs) >= 3 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	stop1()
	f.worker(WorkerConfig{Consumer: "takes-over", Backend: slow, VisibilityTimeout: visibility})
	s.waitEnd(t, job.ID)
	cs, failed := s.got(job.ID)
	if failed != "" || text(t, cs) != strings.Join(strings.Fields(job.Message), "") {
		t.Fatalf("answer %q, failed %q", text(t, cs), failed)
	}
	resets := 0
	for _, c := range cs {
		if c.Reset {
			resets++
			if c.Seq != 0 || c.Attempt != 2 {
				t.Fatalf("reset chunk %+v", c)
			}
		}
	}
	if resets != 1 {
		t.Fatalf("%d resets, want 1: %+v", resets, cs)
	}
	a, err := q.Answer(context.Background(), job.ID, -1)
	if err != nil || len(a.Chunks) != 31 || !a.Chunks[0].Reset || a.Chunks[0].Attempt != 2 {
		t.Fatalf("the stored answer holds the second attempt only: %d chunks, first %+v, %v", len(a.Chunks), a.Chunks[0], err)
	}
}

func TestRedisLongAnswerOnALiveWorkerIsNotReclaimed(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	q, s := f.node("a")
	const visibility = 400 * time.Millisecond
	slow := Echo{Delay: 30 * time.Millisecond} // 40 words: three visibility timeouts
	f.worker(WorkerConfig{Consumer: "w1", Backend: slow, VisibilityTimeout: visibility})
	f.worker(WorkerConfig{Consumer: "w2", Backend: slow, VisibilityTimeout: visibility})
	job := &Job{Message: strings.Repeat("w ", 40)}
	ask(t, q, job)
	s.waitEnd(t, job.ID)
	cs, failed := s.got(job.ID)
	if failed != "" || len(cs) != 40 {
		t.Fatalf("%d chunks, failed %q", len(cs), failed)
	}
	for _, c := range cs {
		if c.Reset || c.Attempt != 1 {
			t.Fatalf("the job was taken from its live worker: %+v", c)
		}
	}
}

// flaky fails with a transient error every time.
type flaky struct{ calls atomic.Int32 }

func (b *flaky) Stream(context.Context, *Job, func(string) error) error {
	b.calls.Add(1)
	return fmt.Errorf("%w: test server says 503", ErrTransient)
}

func TestRedisDeadLetterAfterMaxAttempts(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	q, s := f.node("a")
	b := &flaky{}
	f.worker(WorkerConfig{Consumer: "w", Backend: b, MaxAttempts: 3, RetryBackoff: time.Millisecond})
	job := &Job{Message: "hello"}
	ask(t, q, job)
	s.waitEnd(t, job.ID)
	_, failed := s.got(job.ID)
	if !strings.Contains(failed, "gave up after 3 attempts") || !strings.Contains(failed, "503") {
		t.Fatalf("failed %q", failed)
	}
	if n := b.calls.Load(); n != 3 {
		t.Fatalf("%d attempts, want 3", n)
	}
	dead := f.srv.MustDo("XRANGE", f.prefix+":jobs:dead", "-", "+")
	if !strings.Contains(dead, job.ID) {
		t.Fatalf("the job is not in the dead stream: %q", dead)
	}
	waitStats(t, q, func(st []Stats) bool { return len(st) > 0 && st[0].Pending == 0 }, "the dead job no longer pending")
}

func TestRedisPermanentErrorFailsAtOnce(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	q, s := f.node("a")
	llm := llmtest.Start(t, llmtest.Behavior{Answer: "one two three four five", CutAfter: 2})
	f.worker(WorkerConfig{Consumer: "w", Backend: NewAnthropic(BackendConfig{BaseURL: llm.AnthropicURL(), APIKey: "k", Model: "m"})})
	job := &Job{Message: "hello"}
	ask(t, q, job)
	s.waitEnd(t, job.ID)
	cs, failed := s.got(job.ID)
	if !strings.Contains(failed, ErrStreamCut.Error()) || len(llm.Requests()) != 1 {
		t.Fatalf("failed %q after %d requests, chunks %+v", failed, len(llm.Requests()), cs)
	}
	for _, c := range cs {
		if c.Done {
			t.Fatalf("a cut answer was marked done: %+v", cs)
		}
	}
}

func TestRedisCancelAndDisconnectEndTheBackendRequest(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	q, s := f.node("a")
	llm := llmtest.Start(t, llmtest.Behavior{Answer: strings.Repeat("slow ", 200), Delay: 20 * time.Millisecond})
	f.worker(WorkerConfig{Consumer: "w", Grace: 100 * time.Millisecond, Backend: NewOpenAI(BackendConfig{BaseURL: llm.OpenAIURL(), APIKey: "k", Model: "m"})})
	ctx := context.Background()

	cancelled := &Job{Message: "cancel me"}
	ask(t, q, cancelled)
	r := llm.Next(5 * time.Second)
	if r == nil {
		t.Fatal("no backend request")
	}
	if _, err := q.Cancel(ctx, cancelled.ID); err != nil {
		t.Fatal(err)
	}
	s.waitEnd(t, cancelled.ID)
	if _, failed := s.got(cancelled.ID); failed != ReasonCancelled {
		t.Fatalf("failed %q", failed)
	}
	select {
	case <-r.Ended:
	case <-time.After(5 * time.Second):
		t.Fatal("the backend request did not end after the cancel")
	}
	if _, err := q.Cancel(ctx, cancelled.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a second cancel: %v", err)
	}

	left := &Job{Message: "the asker leaves"}
	ask(t, q, left)
	r = llm.Next(5 * time.Second)
	if r == nil {
		t.Fatal("no backend request")
	}
	if err := q.Detach(ctx, left.ID); err != nil {
		t.Fatal(err)
	}
	select {
	case <-r.Ended:
	case <-time.After(5 * time.Second):
		t.Fatal("the backend request did not end after the asker left")
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		a, err := q.Answer(ctx, left.ID, -1)
		if err == nil && a.Ended && a.Failed != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the job of the asker who left did not end: %+v, %v", a, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRedisAttachMovesTheLiveStream(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	qa, sa := f.node("a")
	qb, sb := f.node("b")
	f.worker(WorkerConfig{Consumer: "w", Backend: Echo{Delay: 30 * time.Millisecond}})
	job := &Job{Message: strings.Repeat("w ", 20)}
	ask(t, qa, job)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if cs, _ := sa.got(job.ID); len(cs) >= 3 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	a, err := qb.Attach(context.Background(), job.ID, 1)
	if err != nil || a.Ended {
		t.Fatalf("Attach: %+v, %v", a, err)
	}
	sb.waitEnd(t, job.ID)
	live, _ := sb.got(job.ID)
	held := append([]Chunk{}, a.Chunks...)
	for _, c := range live {
		if len(held) == 0 || c.Seq > held[len(held)-1].Seq {
			held = append(held, c)
		}
	}
	if len(held) != 18 || held[0].Seq != 2 || held[len(held)-1].Seq != 19 || !held[len(held)-1].Done {
		t.Fatalf("replay %d chunks then live %d: %d after seq 1", len(a.Chunks), len(live), len(held))
	}
	for i, c := range held {
		if c.Seq != i+2 {
			t.Fatalf("gap at %d: %+v", i, c)
		}
	}
	if cs, _ := sa.got(job.ID); len(cs) >= 20 {
		t.Fatal("node a kept getting the live chunks after the attach elsewhere")
	}
}

func TestRedisCapsJobsPerUser(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	s := newSink()
	q, err := NewRedis(context.Background(), RedisConfig{Client: f.client(), Prefix: f.prefix, Node: "a", MaxPerUser: 2}, s)
	if err != nil {
		t.Fatal(err)
	}
	add := func(owner string) (*Job, error) {
		job := &Job{Message: "a b", Owner: owner}
		return job, q.Enqueue(context.Background(), job, func(Ticket) {})
	}
	var jobs []*Job
	for range 2 {
		job, err := add("u")
		if err != nil {
			t.Fatal(err)
		}
		jobs = append(jobs, job)
	}
	if _, err := add("u"); !errors.Is(err, ErrUserLimit) {
		t.Fatalf("a third job of u: %v, want ErrUserLimit", err)
	}
	if _, err := add("v"); err != nil {
		t.Fatalf("another user: %v", err)
	}
	f.bus("a", receiver{s}) // the node's channel, for the answers
	f.worker(WorkerConfig{Consumer: "w", Backend: Echo{}})
	// A job's slot is free by the time its asker sees it end: a client
	// that asks again at once is never refused for jobs that are over.
	for round := range 20 {
		for _, job := range jobs {
			s.waitEnd(t, job.ID)
		}
		jobs = jobs[:0]
		for range 2 {
			job, err := add("u")
			if err != nil {
				t.Fatalf("round %d: u asks at once after its jobs ended: %v", round, err)
			}
			jobs = append(jobs, job)
		}
	}
}
