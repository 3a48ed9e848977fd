// Package queue runs AI jobs off the connection path: a question becomes a
// Job in a named queue, a worker streams the answer from an LLM Backend,
// and every piece of the answer is kept (for resume after a reconnect) and
// handed to a Sink, which on a node relays it to the asker.
//
// Memory is the in-process queue of a single node, with its own workers.
// Queue is the contract a fleet's Redis Streams queue will meet too.
//
// # Concurrency
//
// Queue methods are safe for concurrent use and do not wait for a job to
// run. Sink callbacks run on the worker that produced them, one job's
// callbacks in sequence order; they must not block for long.
package queue
