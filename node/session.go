package node

import (
	"crypto/rand"
	"encoding/hex"
	"slices"
	"sync"
	"time"

	"github.com/edgehub/edgehub/netloop"
)

// session is the node's state of one WebSocket connection.
type session struct {
	conn   *netloop.Conn
	connID [16]byte // secret: the welcome's conn, never shown to others
	user   string   // the token's sub, or anon:<public id> without auth
	grants *grants  // shared by every anonymous connection

	// Touched only while handling this connection's messages, which netloop
	// serialises.
	limiter *limiter // created on the first message: idle connections carry none

	mu    sync.Mutex // rooms and jobs are also read when the connection closes
	rooms []string
	jobs  []string // AI jobs whose chunks this connection receives
}

func newSession() *session {
	s := &session{}
	_, _ = rand.Read(s.connID[:])
	return s
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// allow applies the connection's rate limit to one message, valid or not.
// abuse reports that the connection was refused more than RateBurst
// messages within the last 10 s: it must be closed with 1008.
func (s *session) allow(cfg *Config) (ok, abuse bool) {
	now := time.Now()
	if s.limiter == nil {
		s.limiter = newLimiter(cfg, now)
	}
	return s.limiter.allow(now)
}

func (s *session) inRoom(room string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Contains(s.rooms, room)
}

func (s *session) roomCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.rooms)
}

func (s *session) addRoom(room string) {
	s.mu.Lock()
	s.rooms = append(s.rooms, room)
	s.mu.Unlock()
}

// removeRoom reports whether the session was in room.
func (s *session) removeRoom(room string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := slices.Index(s.rooms, room)
	if i < 0 {
		return false
	}
	s.rooms = slices.Delete(s.rooms, i, i+1)
	return true
}

func (s *session) addJob(id string) {
	s.mu.Lock()
	if !slices.Contains(s.jobs, id) {
		s.jobs = append(s.jobs, id)
	}
	s.mu.Unlock()
}

func (s *session) removeJob(id string) {
	s.mu.Lock()
	if i := slices.Index(s.jobs, id); i >= 0 {
		s.jobs = slices.Delete(s.jobs, i, i+1)
	}
	s.mu.Unlock()
}

// detach empties the session's rooms and jobs, for the close.
func (s *session) detach() (rooms, jobs []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rooms, jobs = s.rooms, s.jobs
	s.rooms, s.jobs = nil, nil
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
