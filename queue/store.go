package queue

import (
	"context"
	"sync"
)

// maxPending is how many chunks of one attempt may wait to be stored
// before its backend waits.
const maxPending = 256

// storer stores one attempt's chunks in order, batching them: while one
// chunkScript call is in flight the backend's next chunks gather and go in
// the next call, so a fast backend costs a round trip per batch, not per
// chunk. The first failure (a cancel, another worker's attempt, Redis)
// stops the attempt: the backend's context is cancelled with it.
type storer struct {
	w    *Worker
	rj   *runningJob
	ctx  context.Context
	done chan struct{}

	mu      sync.Mutex
	cond    *sync.Cond
	pending []Chunk
	closed  bool
	err     error
}

func (w *Worker) newStorer(ctx context.Context, rj *runningJob) *storer {
	s := &storer{w: w, rj: rj, ctx: ctx, done: make(chan struct{})}
	s.cond = sync.NewCond(&s.mu)
	go s.run()
	return s
}

// add queues a chunk; it returns the error that stopped the attempt.
func (s *storer) add(c Chunk) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.pending) >= maxPending && s.err == nil {
		s.cond.Wait()
	}
	if s.err != nil {
		return s.err
	}
	s.pending = append(s.pending, c)
	s.cond.Broadcast()
	return nil
}

// close waits until every queued chunk is stored, or the attempt stopped,
// and returns why it stopped (nil: all stored).
func (s *storer) close() error {
	s.mu.Lock()
	s.closed = true
	s.cond.Broadcast()
	s.mu.Unlock()
	<-s.done
	return s.err
}

func (s *storer) run() {
	defer close(s.done)
	for {
		s.mu.Lock()
		for len(s.pending) == 0 && !s.closed {
			s.cond.Wait()
		}
		batch := s.pending
		s.pending = nil
		s.cond.Broadcast()
		s.mu.Unlock()
		if len(batch) == 0 {
			return // closed, all stored
		}
		if err := s.w.store(s.ctx, s.rj, batch); err != nil {
			s.rj.cancel(err)
			s.mu.Lock()
			s.err = err
			s.cond.Broadcast()
			s.mu.Unlock()
			return
		}
	}
}
