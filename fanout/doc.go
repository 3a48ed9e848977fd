// Package fanout delivers room messages to the connections of a node, and
// between the nodes of a fleet.
//
// Hub is the node-local membership: which connections are in which room,
// lock-sharded by room so joins, leaves and broadcasts of different rooms
// rarely meet. A broadcast hands the same encoded frame to every member.
//
// Bus is the transport between nodes: Publish gives a message its offset in
// the room, stores it in the room's history, and delivers it to every node
// attached to the room. NewMemory is the single-node Bus; NewRedis joins
// nodes into a fleet on Redis (rueidis).
//
// # Layers
//
// Both Buses are one sync layer (syncBus, sync.go) over a broker that
// stores and carries the streams (memBroker, redisBroker). The sync layer
// is what makes delivery exactly-once and in order on every node: it counts
// local members per room (Attach/Detach) and subscribes a room on its first
// member and unsubscribes after its last, one subscription per room per
// node; it remembers the last offset delivered per room, drops duplicates,
// and fills gaps from the history (a live message that skips ahead, or a
// subscription that came back after Redis dropped it); and it syncs joins
// with live traffic without blocking it (see Attach).
//
// # Redis
//
// Rooms are hashed onto the shards of -redis with a jump consistent hash;
// a redis-cluster:// URL is one shard that rueidis spreads over the
// cluster's slots. Keys carry the room in a hash tag, so a room's keys and
// channel share a slot:
//
//	<prefix>:{room}:meta   hash: epoch (read through client-side caching)
//	<prefix>:{room}:off    the offset counter (apart from meta, so that a
//	                       publish does not invalidate every node's cache)
//	<prefix>:{room}:hist   stream, capped; stream id <offset>-1
//	<prefix>:{room}:ch     sharded pub/sub channel (SSUBSCRIBE/SPUBLISH)
//	<prefix>:node:{id}     a node's own channel (SendToNode)
//	<prefix>:nodes         hash: the fleet view, node id -> entry
//	<prefix>:revoked:{jti} a revoked token id, with a TTL
//
// A publish is one Lua script (lua/publish.lua): offset, history append
// and trim, epoch, and the channel publish, atomically, so channel order is
// offset order. Its payload carries the message frame's JSON ready-made.
// Each shard has one client for commands and cached reads and one for
// subscriptions; a subscription's messages are spread over a few processor
// goroutines by room, and a full processor drops and refills from the
// history instead of blocking rueidis' read loop.
//
// Cost per subscribed room: rueidis' Receive blocks for the life of a
// subscription, so each room a node is subscribed to holds one goroutine
// (measured: ~8.4 KB per room, 4 KiB of stack and ~4.3 KB of heap, at
// 5,000 rooms). It scales with the rooms a node has members in, not with
// connections: 100 rooms cost under 1 MB, 100,000 distinct rooms on one
// node ~840 MB. A node expected to hold that many rooms would want one
// dedicated pub/sub connection per shard (rueidis' Dedicate and
// SetPubSubHooks, resubscribing its rooms itself on a reconnect); the
// room sync layer would stay as it is.
//
// # Goroutines and blocking
//
// Publish, Attach and the Fleet methods may wait on Redis (bound them with
// the context). Detach never blocks: unsubscribing runs in the background.
// Receiver methods are called from the publisher's goroutine (memory) or
// from a processor (Redis), one room at a time, and must not block.
//
// # Lock order
//
//	syncShard.mu ─▶ syncRoom.mu
//	syncRoom.sub (across subscribe/unsubscribe I/O) ─▶ syncRoom.mu
//	memBroker room lock ─▶ syncRoom.mu (a publish hands its message on in order)
//	syncRoom.mu (held while delivering) ─▶ Hub shard lock ─▶ member's own lock (Member.Send)
package fanout
