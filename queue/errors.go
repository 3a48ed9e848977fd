package queue

import "errors"

var (
	// ErrNotFound is returned for a job that is unknown, expired or (for
	// Cancel) already finished.
	ErrNotFound = errors.New("job not found")
	// ErrFull refuses a job when its queue holds as many waiting jobs as
	// it may.
	ErrFull = errors.New("the AI queue is full")
	// ErrUserLimit refuses a job when its asker has as many jobs waiting
	// or running as a user may.
	ErrUserLimit = errors.New("too many AI questions waiting for this user")
	// ErrTransient marks a backend error worth another attempt: a 429,
	// a 5xx, an unreachable server, before any text came.
	ErrTransient = errors.New("transient backend error")
	// ErrLost is wrapped by an Enqueue error that came after accepted:
	// the asker was told "queued", and must now be told the job failed.
	ErrLost = errors.New("the question was lost on its way to the queue")
	// ErrClosed is returned by a queue that was closed.
	ErrClosed = errors.New("queue: closed")
)
