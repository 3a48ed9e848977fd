package queue

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"
)

// sink records what workers report, and signals each job's end.
type sink struct {
	mu     sync.Mutex
	chunks map[string][]Chunk
	failed map[string]string
	ended  chan string
}

func newSink() *sink {
	return &sink{chunks: map[string][]Chunk{}, failed: map[string]string{}, ended: make(chan string, 100)}
}

func (s *sink) OnChunk(job *Job, c Chunk) {
	s.mu.Lock()
	s.chunks[job.ID] = append(s.chunks[job.ID], c)
	s.mu.Unlock()
	if c.Done {
		s.ended <- job.ID
	}
}

func (s *sink) OnFailed(job *Job, reason string) {
	s.mu.Lock()
	s.failed[job.ID] = reason
	s.mu.Unlock()
	s.ended <- job.ID
}

func (s *sink) waitEnd(t *testing.T, id string) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case got := <-s.ended:
			if got == id {
				return
			}
		case <-timeout:
			t.Fatalf("job %s did not end", id)
		}
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
		if _, err := q.Enqueue(context.Background(), job); err != nil {
			t.Fatal(err)
		}
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
	q.Enqueue(context.Background(), job)
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
	q.Enqueue(context.Background(), running)
	q.Enqueue(context.Background(), waiting)
	if _, err := q.Cancel(context.Background(), waiting.ID); err != nil {
		t.Fatalf("cancel a waiting job: %v", err)
	}
	s.waitEnd(t, waiting.ID)
	time.Sleep(80 * time.Millisecond) // let the running job produce a chunk or two
	if _, err := q.Cancel(context.Background(), running.ID); err != nil {
		t.Fatalf("cancel a running job: %v", err)
	}
	s.waitEnd(t, running.ID)
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
	q.Enqueue(context.Background(), job)
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
	q.Enqueue(context.Background(), job)
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
		ticket, err := q.Enqueue(context.Background(), job)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, job.ID)
		if i == 0 && (ticket.Position != 0 || ticket.EstimatedWait != 0) {
			t.Fatalf("first job with an idle worker: %+v", ticket)
		}
		if i == 2 && (ticket.Position < 1 || ticket.EstimatedWait <= 0) {
			t.Fatalf("third job behind a busy worker: %+v", ticket)
		}
	}
	st, _ := q.Stats(context.Background())
	if len(st) != 1 || st[0].Queue != "default" || st[0].Consumers != 1 || st[0].Length+st[0].Pending != 3 {
		t.Fatalf("Stats = %+v", st)
	}
	for _, id := range ids {
		s.waitEnd(t, id)
	}
}
