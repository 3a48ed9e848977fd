// Package queue runs AI jobs off the connection path: a question becomes a
// Job, routed by content (Rules) to a named queue; a worker streams the
// answer from an LLM Backend; every chunk of the current attempt is kept
// (for a resume after a reconnect) and handed to the Sink of the node
// that holds the asker, or relayed to a room's members on every node.
//
// Two implementations of Queue:
//
//   - Memory: the single node's in-process queue with its own workers
//     (the echo backend by default), capped in waiting jobs and per user.
//   - Redis (node side) and Worker (the edgehub-worker binary) on Redis
//     Streams: XADD to {p}:jobs:{queue}, XREADGROUP in group "workers" on
//     rueidis' dedicated blocking connections, XACK when done, XAUTOCLAIM
//     of a dead worker's jobs after the visibility timeout, XCLAIM JUSTID
//     to keep a live worker's jobs, dead letters to {p}:jobs:dead. The
//     attempt is the entry's delivery count; a retry clears the stored
//     answer and starts at seq 0 with Reset. Chunks go to {p}:job:{id}:out
//     and to the asker's node as an Event (Dispatch decodes it there). The
//     layout is in redis.go.
//
// Backends: OpenAI (any OpenAI-compatible server) and Anthropic on the
// official SDKs, Echo for demos and benchmarks; llmtest is a local server
// speaking both stream formats for tests.
//
// A node's relay keeps a Cursor per recipient: a replay and the live
// stream never send a chunk twice, and a chunk lost on the way (pub/sub
// drops messages across a reconnect) is filled from the stored answer or
// ends the recipient's stream with ai-error, never leaves a gap.
//
// # Concurrency
//
// Queue methods are safe for concurrent use and do not wait for a job to
// run (a Redis queue makes one or two round trips). Enqueue's accepted
// callback runs before any worker can see the job, under the Memory
// queue's lock: it must only send. Sink callbacks run on the goroutine
// that produced them (a Memory worker, or the Bus's delivery of an
// Event), one job's chunks in sequence order; they must not block for
// long. A Worker's Run blocks until its context ends; a job's chunks are
// published in order by the one goroutine answering it.
package queue
