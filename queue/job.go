package queue

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"time"
)

// Job is one AI request.
type Job struct {
	ID      string
	Queue   string
	Owner   string // the asker's user id: only the owner may cancel or resume
	Message string
	Model   string
	Room    string // when set, the answer streams to the room's members
	Created time.Time
}

// Chunk is one piece of an answer. Seq counts from 0; the last chunk of a
// job has Done set.
type Chunk struct {
	Job     string
	Seq     int
	Content string
	Done    bool
}

// Ticket is what Enqueue tells the asker.
type Ticket struct {
	// Position is the number of jobs ahead of this one: 0 means a worker
	// takes it next.
	Position      int
	EstimatedWait time.Duration
}

// Answer is what a job has produced so far.
type Answer struct {
	Job    Job
	Chunks []Chunk // the chunks asked for, in Seq order
	Last   *Chunk  // the job's last chunk so far, nil before the first
	Ended  bool    // the last chunk has Done, or the job failed
	Failed string  // the failure reason, when it ended without its last chunk
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

// ErrNotFound is returned for a job that is unknown, expired or (for
// Cancel) already finished.
var ErrNotFound = errors.New("job not found")

// Backend streams the answer to a job: it calls emit with each piece of
// text as it arrives, and returns when the answer is complete.
type Backend interface {
	Stream(ctx context.Context, job *Job, emit func(content string) error) error
}

// Sink receives what workers produce for the jobs of this node.
type Sink interface {
	// OnChunk is called for every chunk, in Seq order per job.
	OnChunk(job *Job, c Chunk)
	// OnFailed is called once when a job ends without its last chunk:
	// reason is ReasonCancelled, ReasonTimeout or the backend's error.
	OnFailed(job *Job, reason string)
}

// Queue takes jobs and keeps their answers for a while.
type Queue interface {
	// Enqueue accepts job (ID and Created are filled in when empty).
	Enqueue(ctx context.Context, job *Job) (Ticket, error)
	// Cancel stops a waiting or running job; ErrNotFound when it is
	// unknown or finished.
	Cancel(ctx context.Context, id string) (*Job, error)
	// Answer returns the job with its chunks after Seq after.
	Answer(ctx context.Context, id string, after int) (Answer, error)
	// Stats describes each queue.
	Stats(ctx context.Context) ([]Stats, error)
	// Close stops the workers; running jobs are cancelled.
	Close() error
}

// NewID returns an unguessable job id.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
