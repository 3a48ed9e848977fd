package fanout

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"time"
)

// Message is one published message of a room.
type Message struct {
	Room   string
	Epoch  string
	Offset uint64
	From   string
	Data   []byte    // a JSON value, kept byte for byte
	Time   time.Time // when it was stored (the bus lag is measured from it)
	// Text is the complete JSON text of the message frame when the bus
	// carried it ready-made (Redis); otherwise the node builds it from
	// the fields above.
	Text []byte
}

// size is about what the message costs in a connection's queue.
func (m *Message) size() int {
	if m.Text != nil {
		return len(m.Text) + recoveryOverhead
	}
	return len(m.Data) + len(m.From) + len(m.Room) + recoveryOverhead
}

// Position is a point in a room's stream: offsets count from 1 within an
// epoch, and the epoch changes whenever the room's history is lost.
type Position struct {
	Epoch  string
	Offset uint64
}

// History is what Attach found for a joining member.
type History struct {
	// Missed are the messages after the member's position, oldest first;
	// empty unless Recovered. Valid only during the Attach callback.
	Missed []Message
	// Latest is the room's current position.
	Latest Position
	// Recovered is true when the member's position is in this epoch and
	// the history still holds every message after it, within the
	// recovery limits.
	Recovered bool
}

// Receiver is what a Bus delivers to its node. Its methods must not block:
// they encode a frame once and hand it to the Hub or to one connection.
type Receiver interface {
	// Deliver is called for every message of the rooms the node is
	// attached to: once per offset, in offset order per room, one at a
	// time per room.
	Deliver(m *Message)
	// Relayed is called with a payload sent with Relay to a room the node
	// is attached to: the complete JSON text of a frame for every local
	// member. It has no offset and is not in the history.
	Relayed(room string, payload []byte)
	// Addressed is called with a payload sent to this node with
	// SendToNode (frames for one of its connections, fleet commands).
	Addressed(payload []byte)
}

// Bus carries room messages between the nodes of a fleet.
type Bus interface {
	// Publish gives data its offset in room, stores it in the room's
	// history, and delivers it to every attached node. A nil error means
	// the message is stored: it reaches every member.
	Publish(ctx context.Context, room, from string, data []byte) (offset uint64, err error)
	// Attach adds one local member to room (subscribing the node to it
	// when it is the first) and runs fn in order with the room's
	// deliveries: every message up to fn's Latest was delivered before fn
	// or is in Missed, every later one is delivered after fn returns. A
	// member added to the Hub inside fn so sees each message once. since
	// may be nil: then Missed is empty and Recovered false. fn must not
	// block.
	Attach(ctx context.Context, room string, since *Position, fn func(History)) error
	// Detach removes one local member of room, as counted by Attach; the
	// node unsubscribes, in the background, when none is left. It never
	// blocks.
	Detach(room string)
	// Relay sends payload to every member of room on every node, outside
	// the room's stream (no offset, no history).
	Relay(ctx context.Context, room string, payload []byte) error
	// SendToNode sends payload to the node with the given id (its
	// Receiver.Addressed).
	SendToNode(ctx context.Context, node string, payload []byte) error
	// Ready reports whether the bus can serve (its Redis answers).
	Ready(ctx context.Context) error
	Fleet
	// Close stops the Bus.
	Close() error
}

// Fleet is what the nodes of a fleet share beyond rooms: who is alive, and
// which tokens are revoked.
type Fleet interface {
	// Register publishes this node's entry (refreshed by the caller every
	// few seconds; an entry not refreshed for a while is dropped).
	Register(ctx context.Context, info NodeInfo) error
	// Nodes lists the live nodes.
	Nodes(ctx context.Context) ([]NodeInfo, error)
	// Revoke refuses the token id jti for ttl on every node and sends
	// every node an Addressed payload {"kind":"revoke","jti":jti}, so
	// that connections open with it are closed.
	Revoke(ctx context.Context, jti string, ttl time.Duration) error
	// Revoked reports whether jti was revoked.
	Revoked(ctx context.Context, jti string) (bool, error)
}

// NodeInfo is one node's entry in the fleet view.
type NodeInfo struct {
	ID    string `json:"id"`
	Addr  string `json:"addr"`
	Conns int    `json:"conns"`
	Rooms int    `json:"rooms"`
	// Seen is when the entry was last refreshed (Unix milliseconds).
	Seen int64 `json:"seen"`
}

// History bounds, per room: at most DefaultHistorySize messages and none
// older than DefaultHistoryTTL.
const (
	DefaultHistorySize = 1000
	DefaultHistoryTTL  = 10 * time.Minute
)

// ErrClosed is returned by a Bus that was closed.
var ErrClosed = errors.New("fanout: bus closed")

// newEpoch returns a fresh opaque epoch.
func newEpoch() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// revokePayload is the Addressed payload that asks a node to close the
// connections opened with the token id jti.
func revokePayload(jti string) []byte {
	b, _ := json.Marshal(struct {
		Kind string `json:"kind"`
		JTI  string `json:"jti"`
	}{"revoke", jti})
	return b
}
