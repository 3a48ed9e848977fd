package queue

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"time"
)

// Job is one AI request.
type Job struct {
	ID      string
	Queue   string // set by the Rules at Enqueue
	Owner   string // the asker's user id: only the owner may cancel or resume
	Message string
	Model   string // the client's choice, else the queue's model from the Rules
	Room    string // when set, the answer streams to the room's members
	Node    string // the node of the asker's connection (fleet queue)
	Conn    string // the asker's connection, informational
	Created time.Time
	Attempt int // 1 for the first try; a retry starts the answer over
}

// Chunk is one piece of an answer. Seq counts from 0 within an attempt;
// the last chunk of a job has Done set, the first chunk of a retried
// attempt has Reset set.
type Chunk struct {
	Job     string
	Seq     int
	Content string
	Done    bool
	Reset   bool
	Attempt int
}

// Ticket is what Enqueue tells the asker.
type Ticket struct {
	// Position is the number of jobs ahead of this one: 0 means a worker
	// takes it next.
	Position      int
	EstimatedWait time.Duration
}

// Answer is what a job has produced so far in its current attempt.
type Answer struct {
	Job    Job
	Chunks []Chunk // the chunks asked for, in Seq order
	Last   *Chunk  // the attempt's last chunk so far, nil before the first
	Ended  bool    // the last chunk has Done, or the job failed
	Failed string  // the failure reason, when it ended without its last chunk
}

// answerAfter builds an Answer from an attempt's chunks, keeping those
// after seq after.
func answerAfter(job Job, chunks []Chunk, after int, ended bool, failed string) Answer {
	a := Answer{Job: job, Ended: ended, Failed: failed}
	if n := len(chunks); n > 0 {
		last := chunks[n-1]
		a.Last = &last
		a.Chunks = append([]Chunk(nil), chunks[min(max(after+1, 0), n):]...)
	}
	return a
}

// Stats describes one queue, for the fleet's queue view.
type Stats struct {
	Queue     string `json:"queue"`
	Length    int    `json:"length"`    // jobs waiting for a worker
	Pending   int    `json:"pending"`   // jobs a worker is answering
	Consumers int    `json:"consumers"` // workers
}

// Reasons a job ends without its last chunk, as ai-error reports them.
const (
	ReasonCancelled = "cancelled"
	ReasonTimeout   = "timeout"
)

// Backend streams the answer to a job: it calls emit with each piece of
// text as it arrives, and returns when the answer is complete. An error
// wrapping ErrTransient (429, 5xx, unreachable, before any text) lets the
// queue try the job again; any other error fails it.
type Backend interface {
	Stream(ctx context.Context, job *Job, emit func(content string) error) error
}

// Sink receives what workers produce for the jobs of this node.
type Sink interface {
	// OnChunk is called for every chunk, in Seq order per attempt.
	OnChunk(job *Job, c Chunk)
	// OnFailed is called when a job ends without its last chunk: reason
	// is ReasonCancelled, ReasonTimeout or the backend's error.
	OnFailed(job *Job, reason string)
}

// Rooms carries room answers: the complete JSON text of an ai-chunk or
// ai-error frame to every member of room, on every node (fanout.Bus).
type Rooms interface {
	Relay(ctx context.Context, room string, payload []byte) error
}

// Queue takes jobs and keeps their answers for a while.
type Queue interface {
	// Enqueue routes job to a queue and accepts it (ID and Created are
	// filled in when empty). ErrFull and ErrUserLimit refuse it.
	// accepted is called with the job's place before any worker can take
	// it, so that "queued" reaches the asker before the first chunk; an
	// error after accepted (ErrLost) means the job was lost on the way.
	Enqueue(ctx context.Context, job *Job, accepted func(Ticket)) error
	// Cancel stops a waiting or running job; ErrNotFound when it is
	// unknown or finished. The Sink hears of the end.
	Cancel(ctx context.Context, id string) (*Job, error)
	// Answer returns the job with its current attempt's chunks after seq
	// after.
	Answer(ctx context.Context, id string, after int) (Answer, error)
	// Attach is Answer that also moves the job's live stream to this
	// node, atomically with the read: every later chunk reaches this
	// node's Sink.
	Attach(ctx context.Context, id string, after int) (Answer, error)
	// Detach tells the queue that the job's asker left this node: unless
	// the job is attached again within the queue's grace period, it is
	// cancelled.
	Detach(ctx context.Context, id string) error
	// Stats describes each queue.
	Stats(ctx context.Context) ([]Stats, error)
	// Close stops the queue; running jobs of its own workers are
	// cancelled.
	Close() error
}

// NewID returns an unguessable job id.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
