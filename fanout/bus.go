package fanout

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"time"
)

// Message is one published message of a room.
type Message struct {
	Room   string
	Offset uint64
	From   string
	Data   []byte // a JSON value, kept byte for byte
	Time   time.Time
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
	// the history still holds every message after it.
	Recovered bool
}

// DeliverFunc receives every message of the rooms a node is attached to,
// one at a time per room, in offset order. It must not block: it encodes
// the frame once and hands it to the Hub.
type DeliverFunc func(m *Message)

// Bus carries room messages between the nodes of a fleet.
type Bus interface {
	// Publish gives data its offset in room, stores it in the room's
	// history, and delivers it to every attached node.
	Publish(ctx context.Context, room, from string, data []byte) (offset uint64, err error)
	// Attach makes sure this node receives room's messages and runs fn in
	// order with their delivery (see the package comment). since may be
	// nil: then History has no Missed messages and Recovered is false.
	Attach(ctx context.Context, room string, since *Position, fn func(History)) error
	// Detach tells the Bus that this node no longer has members in room.
	Detach(room string)
	// Close stops the Bus.
	Close() error
}

// DefaultHistorySize is how many messages a room keeps at least; a room
// keeps more when they are younger than DefaultHistoryTTL.
const (
	DefaultHistorySize = 1000
	DefaultHistoryTTL  = 10 * time.Minute
)

// newEpoch returns a fresh opaque epoch.
func newEpoch() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
