// Package node is an edgehub node: it speaks the client protocol (see
// docs/PROTOCOL.md) over netloop's connections, keeps rooms with fanout,
// hands AI questions to a queue, and serves the HTTP API and the demo page
// on the same port.
//
// A Node is the only place where the parts meet: netloop and frame know
// nothing of rooms, fanout knows nothing of JSON, queue knows nothing of
// connections.
//
// # Goroutines
//
// Client messages are handled on netloop's pool, one message at a time per
// connection (see netloop). Room deliveries run on the publisher's
// goroutine (Memory bus); AI chunks on the in-process queue's workers, or,
// in a fleet, on the Bus's delivery of the workers' events (aiRelay.
// addressed). None of them blocks on a client: every send is
// netloop.Conn.Send, which only queues. An AI gap fill or resume reads the
// queue (Redis in a fleet) while holding that one job's relayJob.mu.
//
// # Lock order
//
//	Memory bus room lock ─▶ relayJob.mu ─▶ fanout.Hub shard lock ─▶ netloop.Conn locks (Send)
//	relayJob.mu ─▶ queue.Memory's lock (Enqueue's accepted sends "queued" under it) ─▶ netloop.Conn locks
//	aiRelay.mu is taken alone, to find a relayJob. The in-process queue
//	calls the relay (its Sink) and relays room answers with no lock held.
//
// session.mu, guarding a connection's room and job lists, is a leaf: it
// may be taken under any of these, and nothing is taken under it.
package node
