package queue

import (
	"encoding/json"
	"fmt"
	"time"
)

// The client frames of an answer (PROTOCOL.md ai-chunk, ai-error), encoded
// here so that a worker relaying to a room and a node sending to one
// connection write the same bytes.

type chunkFrame struct {
	Type    string `json:"type"`
	Job     string `json:"job"`
	Seq     int    `json:"seq"`
	Content string `json:"content"`
	Done    bool   `json:"done"`
	Room    string `json:"room,omitempty"`
	Reset   bool   `json:"reset,omitempty"`
}

type errorFrame struct {
	Type  string `json:"type"`
	Job   string `json:"job"`
	Error string `json:"error"`
	Room  string `json:"room,omitempty"`
}

// ChunkFrame is the ai-chunk frame of c.
func ChunkFrame(job *Job, c Chunk) []byte {
	b, _ := json.Marshal(chunkFrame{Type: "ai-chunk", Job: job.ID, Seq: c.Seq, Content: c.Content, Done: c.Done, Room: job.Room, Reset: c.Reset})
	return b
}

// ErrorFrame is the ai-error frame of a job that ended with reason.
func ErrorFrame(job *Job, reason string) []byte {
	b, _ := json.Marshal(errorFrame{Type: "ai-error", Job: job.ID, Error: reason, Room: job.Room})
	return b
}

// Event is what a worker sends to the asker's node (fanout
// Bus.SendToNode): chunks of one job, in order, or the job's failure.
// Kind is EventKind.
type Event struct {
	Kind    string       `json:"kind"`
	Job     string       `json:"job"`
	Queue   string       `json:"queue"`
	Created int64        `json:"created"` // the job's creation, Unix milliseconds
	Chunks  []EventChunk `json:"chunks,omitempty"`
	Error   string       `json:"error,omitempty"` // set: the job failed with this reason
}

// EventChunk is one chunk in an Event.
type EventChunk struct {
	Seq     int    `json:"seq"`
	Content string `json:"content,omitempty"`
	Done    bool   `json:"done,omitempty"`
	Reset   bool   `json:"reset,omitempty"`
	Attempt int    `json:"attempt,omitempty"`
}

// EventKind is the "kind" of an Event among a node's addressed payloads.
const EventKind = "ai"

func chunkEvent(job *Job, cs []Chunk) []byte {
	e := Event{Kind: EventKind, Job: job.ID, Queue: job.Queue, Created: job.Created.UnixMilli(), Chunks: make([]EventChunk, len(cs))}
	for i, c := range cs {
		e.Chunks[i] = EventChunk{Seq: c.Seq, Content: c.Content, Done: c.Done, Reset: c.Reset, Attempt: c.Attempt}
	}
	b, _ := json.Marshal(e)
	return b
}

func failEvent(job *Job, reason string) []byte {
	b, _ := json.Marshal(Event{Kind: EventKind, Job: job.ID, Queue: job.Queue, Created: job.Created.UnixMilli(), Error: reason})
	return b
}

// Dispatch decodes an Event sent to this node and hands it to sink.
func Dispatch(payload []byte, sink Sink) error {
	var e Event
	if err := json.Unmarshal(payload, &e); err != nil {
		return fmt.Errorf("queue: bad event: %w", err)
	}
	if e.Kind != EventKind || e.Job == "" {
		return fmt.Errorf("queue: not an AI event: %.80s", payload)
	}
	job := &Job{ID: e.Job, Queue: e.Queue, Created: time.UnixMilli(e.Created)}
	if e.Error != "" {
		sink.OnFailed(job, e.Error)
		return nil
	}
	for _, c := range e.Chunks {
		job.Attempt = c.Attempt
		sink.OnChunk(job, Chunk{Job: e.Job, Seq: c.Seq, Content: c.Content, Done: c.Done, Reset: c.Reset, Attempt: c.Attempt})
	}
	return nil
}
