package queue

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"
)

// sink records what workers report, and which jobs ended.
type sink struct {
	mu     sync.Mutex
	chunks map[string][]Chunk
	failed map[string]string
	ended  map[string]bool
}

func newSink() *sink {
	return &sink{chunks: map[string][]Chunk{}, failed: map[string]string{}, ended: map[string]bool{}}
}

func (s *sink) OnChunk(job *Job, c Chunk) {
	s.mu.Lock()
	s.chunks[job.ID] = append(s.chunks[job.ID], c)
	if c.Done {
		s.ended[job.ID] = true
	}
	s.mu.Unlock()
}

func (s *sink) OnFailed(job *Job, reason string) {
	s.mu.Lock()
	s.failed[job.ID] = reason
	s.ended[job.ID] = true
	s.mu.Unlock()
}

// waitEnd waits for the job's last chunk or failure; the timeout bounds
// the wait and asserts no duration.
func (s *sink) waitEnd(t *testing.T, id string) {
	t.Helper()
	s.waitFor(t, id, func() bool { return s.ended[id] })
}

// waitChunks waits until the job has produced n chunks (it is running).
func (s *sink) waitChunks(t *testing.T, id string, n int) {
	t.Helper()
	s.waitFor(t, id, func() bool { return len(s.chunks[id]) >= n })
}

// waitFor polls cond, called with s.mu held, until it holds.
func (s *sink) waitFor(t *testing.T, id string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.mu.Lock()
		ok := cond()
		s.mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s: timed out waiting", id)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func newQueue(t *testing.T, cfg MemoryConfig, s Sink) *Memory {
	t.Helper()
	q, err := NewMemory(cfg, s)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

// enqueue adds job and returns its ticket.
func enqueue(t *testing.T, q Queue, job *Job) Ticket {
	t.Helper()
	var ticket Ticket
	if err := q.Enqueue(context.Background(), job, func(tk Ticket) { ticket = tk }); err != nil {
		t.Fatal(err)
	}
	return ticket
}

func contents(cs []Chunk) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Content)
	}
	return out
}

func TestEchoAnswersWordByWord(t *testing.T) {
	t.Parallel()
	tcs := []struct {
		question string
		want     []string
	}{
		{"hello big  world", []string{"hello", "big", "world"}},
		{"one", []string{"one"}},
		{"   ", []string{""}}, // no words: one empty last chunk
	}
	for _, tc := range tcs {
		s := newSink()
		q := newQueue(t, MemoryConfig{Backend: Echo{Delay: time.Millisecond}}, s)
		job := &Job{Message: tc.question, Owner: "u"}
		enqueue(t, q, job)
		s.waitEnd(t, job.ID)
		got := s.chunks[job.ID]
		if !slices.Equal(contents(got), tc.want) {
			t.Fatalf("%q: chunks %q, want %q", tc.question, contents(got), tc.want)
		}
		for i, c := range got {
			if c.Seq != i || c.Done != (i == len(got)-1) || c.Job != job.ID {
				t.Fatalf("%q: chunk %d is %+v", tc.question, i, c)
			}
		}
		a, err := q.Answer(context.Background(), job.ID, -1)
		if err != nil || !a.Ended || a.Failed != "" || !slices.Equal(contents(a.Chunks), tc.want) || !a.Last.Done {
			t.Fatalf("%q: Answer = %+v, %v", tc.question, a, err)
		}
	}
}

func TestAnswerAfterSeq(t *testing.T) {
	t.Parallel()
	s := newSink()
	q := newQueue(t, MemoryConfig{Backend: Echo{}}, s)
	job := &Job{Message: "a b c d"}
	enqueue(t, q, job)
	s.waitEnd(t, job.ID)
	for after, want := range map[int][]string{-1: {"a", "b", "c", "d"}, 1: {"c", "d"}, 3: nil, 10: nil} {
		a, err := q.Answer(context.Background(), job.ID, after)
		if err != nil || !slices.Equal(contents(a.Chunks), want) || a.Last.Seq != 3 {
			t.Fatalf("Answer after %d = %q (last %+v), %v; want %q", after, contents(a.Chunks), a.Last, err, want)
		}
	}
	if _, err := q.Answer(context.Background(), "nope", -1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown job: %v, want ErrNotFound", err)
	}
}

func TestCancel(t *testing.T) {
	t.Parallel()
	s := newSink()
	q := newQueue(t, MemoryConfig{Workers: 1, Backend: Echo{Delay: 50 * time.Millisecond}}, s)
	running := &Job{Message: "a b c d e f g h i j k l m n o p"}
	waiting := &Job{Message: "never asked"}
	enqueue(t, q, running)
	enqueue(t, q, waiting)
	if _, err := q.Cancel(context.Background(), waiting.ID); err != nil {
		t.Fatalf("cancel a waiting job: %v", err)
	}
	s.waitEnd(t, waiting.ID)
	s.waitChunks(t, running.ID, 2) // it runs: cancel it mid-answer, not before it started
	if _, err := q.Cancel(context.Background(), running.ID); err != nil {
		t.Fatalf("cancel a running job: %v", err)
	}
	s.waitEnd(t, running.ID)
	if n := len(s.chunks[running.ID]); n >= 16 {
		t.Fatalf("the running job gave all %d chunks: it was not cancelled mid-answer", n)
	}
	if s.failed[waiting.ID] != ReasonCancelled || s.failed[running.ID] != ReasonCancelled || len(s.chunks[waiting.ID]) != 0 {
		t.Fatalf("failed = %v, waiting chunks = %d", s.failed, len(s.chunks[waiting.ID]))
	}
	if _, err := q.Cancel(context.Background(), running.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("cancel an ended job: %v, want ErrNotFound", err)
	}
	a, _ := q.Answer(context.Background(), running.ID, -1)
	if !a.Ended || a.Failed != ReasonCancelled {
		t.Fatalf("Answer of a cancelled job: %+v", a)
	}
}

func TestTimeout(t *testing.T) {
	t.Parallel()
	s := newSink()
	q := newQueue(t, MemoryConfig{Timeout: 30 * time.Millisecond, Backend: Echo{Delay: time.Second}}, s)
	job := &Job{Message: "slow slow slow"}
	enqueue(t, q, job)
	s.waitEnd(t, job.ID)
	if s.failed[job.ID] != ReasonTimeout {
		t.Fatalf("failed = %q, want %q", s.failed[job.ID], ReasonTimeout)
	}
}

type failing struct{}

func (failing) Stream(context.Context, *Job, func(string) error) error {
	return errors.New("backend unavailable")
}

func TestBackendErrorFailsTheJob(t *testing.T) {
	t.Parallel()
	s := newSink()
	q := newQueue(t, MemoryConfig{Backend: failing{}}, s)
	job := &Job{Message: "x"}
	enqueue(t, q, job)
	s.waitEnd(t, job.ID)
	if s.failed[job.ID] != "backend unavailable" {
		t.Fatalf("failed = %q", s.failed[job.ID])
	}
}

func TestPositionAndStats(t *testing.T) {
	t.Parallel()
	s := newSink()
	q := newQueue(t, MemoryConfig{Workers: 1, Backend: Echo{Delay: 100 * time.Millisecond}}, s)
	var ids []string
	for i := range 3 {
		job := &Job{Message: "a b"}
		ticket := enqueue(t, q, job)
		ids = append(ids, job.ID)
		if i == 0 && (ticket.Position != 0 || ticket.EstimatedWait != 0) {
			t.Fatalf("first job with an idle worker: %+v", ticket)
		}
		if i == 2 && (ticket.Position < 1 || ticket.EstimatedWait <= 0) {
			t.Fatalf("third job behind a busy worker: %+v", ticket)
		}
	}
	st, _ := q.Stats(context.Background())
	total := 0
	for _, s := range st {
		total += s.Length + s.Pending
		if s.Consumers != 1 {
			t.Fatalf("Stats = %+v", st)
		}
	}
	if len(st) != len(DefaultRules().Queues()) || total != 3 {
		t.Fatalf("Stats = %+v", st)
	}
	for _, id := range ids {
		s.waitEnd(t, id)
	}
}

func TestMemoryCapsWaitingAndPerUser(t *testing.T) {
	t.Parallel()
	s := newSink()
	q := newQueue(t, MemoryConfig{Workers: 1, MaxWaiting: 3, MaxPerUser: 2, Backend: Echo{Delay: time.Hour}}, s)
	add := func(owner string) error {
		return q.Enqueue(context.Background(), &Job{Message: "a b", Owner: owner}, func(Ticket) {})
	}
	// One running (it waits an hour between its words), then the waiting ones.
	if err := add("u1"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for { // the first job leaves the waiting line when the worker takes it
		st, _ := q.Stats(context.Background())
		pending := 0
		for _, x := range st {
			pending += x.Pending
		}
		if pending == 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := add("u1"); err != nil {
		t.Fatal(err)
	}
	if err := add("u1"); !errors.Is(err, ErrUserLimit) {
		t.Fatalf("a third job of one user: %v, want ErrUserLimit", err)
	}
	for _, owner := range []string{"u2", "u3"} {
		if err := add(owner); err != nil {
			t.Fatalf("waiting job of %s: %v", owner, err)
		}
	}
	if err := add("u4"); !errors.Is(err, ErrFull) {
		t.Fatalf("a fourth waiting job: %v, want ErrFull", err)
	}
}

// relayed records what a queue sends to rooms.
type relayed struct {
	mu  sync.Mutex
	got map[string][]string
}

func (r *relayed) Relay(_ context.Context, room string, payload []byte) error {
	r.mu.Lock()
	r.got[room] = append(r.got[room], string(payload))
	r.mu.Unlock()
	return nil
}

func TestMemoryRoomAnswersGoThroughTheRooms(t *testing.T) {
	t.Parallel()
	s := newSink()
	rooms := &relayed{got: map[string][]string{}}
	q := newQueue(t, MemoryConfig{Backend: Echo{}, Rooms: rooms}, s)
	job := &Job{Message: "hi there", Room: "r1"}
	enqueue(t, q, job)
	s.waitEnd(t, job.ID)
	rooms.mu.Lock()
	defer rooms.mu.Unlock()
	want := []string{
		`{"type":"ai-chunk","job":"` + job.ID + `","seq":0,"content":"hi","done":false,"room":"r1"}`,
		`{"type":"ai-chunk","job":"` + job.ID + `","seq":1,"content":"there","done":true,"room":"r1"}`,
	}
	if !slices.Equal(rooms.got["r1"], want) {
		t.Fatalf("relayed %q, want %q", rooms.got["r1"], want)
	}
}

func TestMemoryDetachCancelsAfterTheGrace(t *testing.T) {
	t.Parallel()
	s := newSink()
	q := newQueue(t, MemoryConfig{Grace: 20 * time.Millisecond, Backend: Echo{Delay: time.Hour}}, s)
	kept, left := &Job{Message: "a b"}, &Job{Message: "a b"}
	enqueue(t, q, kept)
	enqueue(t, q, left)
	ctx := context.Background()
	q.Detach(ctx, kept.ID)
	q.Detach(ctx, left.ID)
	if _, err := q.Attach(ctx, kept.ID, -1); err != nil {
		t.Fatal(err)
	}
	s.waitEnd(t, left.ID)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failed[left.ID] != ReasonCancelled {
		t.Fatalf("the detached job: %q, want cancelled", s.failed[left.ID])
	}
	if _, ok := s.failed[kept.ID]; ok {
		t.Fatal("the job attached again was cancelled")
	}
}
