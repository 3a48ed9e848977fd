// Package fanout delivers room messages to the connections of a node.
//
// Hub is the node-local membership: which connections are in which room,
// lock-sharded by room so joins, leaves and broadcasts of different rooms
// rarely meet. A broadcast hands the same encoded frame to every member.
//
// Bus is the transport between nodes: Publish gives a message its offset in
// the room, keeps it in the room's history for recovery, and delivers it to
// every node attached to the room, each delivering to its Hub. Memory is the
// single-node Bus; a Redis Bus joins nodes into a fleet.
//
// # Ordering
//
// A Bus delivers a room's messages one at a time, in offset order. Attach
// runs its callback in that same order: every message up to the position it
// reports was delivered before the callback, every later one after it. A
// join that adds its member to the Hub inside the callback therefore sees
// each message exactly once, either in the missed history or live.
//
// # Lock order
//
//	Memory shard lock ─▶ Memory room lock (held while delivering) ─▶ Hub shard lock ─▶ member's own lock (Member.Send)
package fanout
