package node

import (
	"crypto/rand"
	"encoding/hex"
	"slices"
	"sync"
	"time"

	"github.com/edgehub/edgehub/netloop"
)

// session is the node's state of one WebSocket connection. Its secret id
// (the welcome's conn) is not kept here but derived from the connection's
// number when needed (Node.connSecret).
type session struct {
	conn   *netloop.Conn
	user   string  // the token's sub, or anon:<public id> without auth
	grants *grants // shared by every anonymous connection

	// Touched only while handling this connection's messages, which netloop
	// serialises.
	rate rateState

	mu sync.Mutex // rooms and jobs are also read when the connection closes
	// The rooms: nearly every connection is in one, which room holds with
	// no allocation; more holds the others, if any. "" is no room (a room
	// name is never empty).
	room string
	more *[]string
	// jobs are the AI jobs whose chunks this connection receives; nil
	// while there are none, so an idle session keeps to 96 bytes.
	jobs *[]string
}

func newSession() *session { return &session{} }

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// allow applies the connection's rate limit to one message, valid or not.
// abuse reports that the connection was refused more than RateBurst
// messages within the last 10 s: it must be closed with 1008.
func (s *session) allow(cfg *Config) (ok, abuse bool) {
	return s.rate.allow(cfg, time.Now())
}

func (s *session) inRoom(room string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return room != "" && s.room == room || s.more != nil && slices.Contains(*s.more, room)
}

func (s *session) roomCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	if s.room != "" {
		n = 1
	}
	if s.more != nil {
		n += len(*s.more)
	}
	return n
}

// addRoom records room, which the session is not in yet.
func (s *session) addRoom(room string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.room == "":
		s.room = room
	case s.more == nil:
		s.more = &[]string{room}
	default:
		*s.more = append(*s.more, room)
	}
}

// removeRoom reports whether the session was in room.
func (s *session) removeRoom(room string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if room != "" && s.room == room {
		s.room = ""
		if s.more != nil { // keep room filled while there are others
			last := len(*s.more) - 1
			s.room = (*s.more)[last]
			s.dropMore(last)
		}
		return true
	}
	if s.more == nil {
		return false
	}
	i := slices.Index(*s.more, room)
	if i < 0 {
		return false
	}
	s.dropMore(i)
	return true
}

// dropMore removes (*s.more)[i], and more itself once empty.
func (s *session) dropMore(i int) {
	if *s.more = slices.Delete(*s.more, i, i+1); len(*s.more) == 0 {
		s.more = nil
	}
}

func (s *session) addJob(id string) {
	s.mu.Lock()
	switch {
	case s.jobs == nil:
		s.jobs = &[]string{id}
	case !slices.Contains(*s.jobs, id):
		*s.jobs = append(*s.jobs, id)
	}
	s.mu.Unlock()
}

func (s *session) removeJob(id string) {
	s.mu.Lock()
	if s.jobs != nil {
		if i := slices.Index(*s.jobs, id); i >= 0 {
			if *s.jobs = slices.Delete(*s.jobs, i, i+1); len(*s.jobs) == 0 {
				s.jobs = nil
			}
		}
	}
	s.mu.Unlock()
}

// detach empties the session's rooms and jobs, for the close.
func (s *session) detach() (rooms, jobs []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.more != nil {
		rooms = *s.more
	}
	if s.room != "" {
		rooms = append(rooms, s.room)
	}
	if s.jobs != nil {
		jobs = *s.jobs
	}
	s.room, s.more, s.jobs = "", nil, nil
	return rooms, jobs
}

// owns reports whether this connection may cancel or resume a job of
// owner: with auth, the same user; without, whoever holds the job id.
func (s *session) owns(owner string) bool {
	return s.grants.all || s.user == owner
}

func (s *session) send(f []byte) { s.conn.Send(f) }

// sendError answers a request with an error message.
func (s *session) sendError(id []byte, code, text string) {
	s.send(encode(func(e *encoder) {
		e.begin("error").str("code", code).str("error", text).id(id)
	}))
}
