package netloop

import (
	"sync"

	"golang.org/x/sys/unix"
)

// flusher is one writer goroutine. Connections are pinned to a flusher by
// id, so one connection's writes stay in order on one goroutine, and a
// broadcast to many connections is spread over all of them.
type flusher struct {
	mu      sync.Mutex
	pending []*Conn
	spare   []*Conn
	wake    chan struct{}
	done    chan struct{}
	iov     []unix.Iovec
}

func newFlusher() *flusher {
	return &flusher{
		wake: make(chan struct{}, 1),
		done: make(chan struct{}),
		iov:  make([]unix.Iovec, maxIovecs),
	}
}

// add hands c to the flusher. The caller has set c.scheduled, so c is
// added at most once until its flush finishes.
func (f *flusher) add(c *Conn) {
	f.mu.Lock()
	f.pending = append(f.pending, c)
	first := len(f.pending) == 1
	f.mu.Unlock()
	if first {
		select {
		case f.wake <- struct{}{}:
		default:
		}
	}
}

// requeue puts c, still scheduled, at the back of the list: run takes it
// again after the connections already waiting.
func (f *flusher) requeue(c *Conn) {
	f.mu.Lock()
	f.pending = append(f.pending, c)
	f.mu.Unlock()
}

func (f *flusher) run() {
	for {
		select {
		case <-f.wake:
		case <-f.done:
			return
		}
		for {
			f.mu.Lock()
			batch := f.pending
			f.pending, f.spare = f.spare[:0], nil
			f.mu.Unlock()
			if len(batch) == 0 {
				break
			}
			for i, c := range batch {
				if c.flush(f.iov) {
					f.requeue(c)
				}
				batch[i] = nil
			}
			f.mu.Lock()
			f.spare = batch[:0]
			f.mu.Unlock()
		}
	}
}

func (f *flusher) stop() { close(f.done) }
