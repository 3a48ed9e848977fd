package node

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/gobwas/ws"

	"github.com/edgehub/edgehub/fanout"
	"github.com/edgehub/edgehub/netloop"
	"github.com/edgehub/edgehub/queue"
)

// handle serves one client message. It runs on netloop's pool, one message
// at a time per connection.
//
// Every message counts against the rate limit, one that does not decode
// included: answering garbage costs the node as much as answering a
// request. Each request gets a context bounded by RequestTimeout, so a
// stuck bus or queue holds a pool goroutine for that long at most and the
// handler answers unavailable. The context ends when handle returns: work
// that outlives the request (an AI job) must not keep it.
func (n *Node) handle(s *session, msg []byte) {
	var r request
	err := decode(msg, &r)
	if err != nil {
		n.metrics.messageIn(nil)
	} else {
		n.metrics.messageIn(r.typ)
	}
	if ok, abuse := s.allow(&n.cfg); !ok {
		n.metrics.rateLimited.Inc()
		if abuse {
			s.conn.Close(ws.StatusPolicyViolation, "rate limit exceeded")
			return
		}
		s.sendError(r.id, codeRateLimited, fmt.Sprintf("more than %g messages per second", n.cfg.RateLimit))
		return
	}
	if err != nil {
		s.sendError(r.id, codeBadRequest, err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.RequestTimeout)
	defer cancel()
	switch string(r.typ) {
	case "join":
		n.join(ctx, s, &r)
	case "leave":
		n.leave(s, &r)
	case "publish":
		n.publish(ctx, s, &r)
	case "ping":
		s.send(encode(func(e *encoder) { e.begin("pong").id(r.id) }))
	case "ai-query":
		n.aiQuery(ctx, s, &r)
	case "ai-cancel":
		n.aiCancel(ctx, s, &r)
	case "ai-resume":
		n.aiResume(ctx, s, &r)
	default:
		s.sendError(r.id, codeBadRequest, fmt.Sprintf("unknown message type %q", r.typ))
	}
}

// needRoom answers bad_request when a request has no room.
func needRoom(s *session, r *request) (string, bool) {
	if r.room == nil {
		s.sendError(r.id, codeBadRequest, fmt.Sprintf("%s needs a room", r.typ))
		return "", false
	}
	return string(r.room), true
}

// allowedRoom is needRoom plus a grant check, answering forbidden itself.
func allowedRoom(s *session, r *request, allowed func(string) bool, what string) (string, bool) {
	room, ok := needRoom(s, r)
	if ok && !allowed(room) {
		s.sendError(r.id, codeForbidden, fmt.Sprintf("not allowed to %s %s", what, room))
		return "", false
	}
	return room, ok
}

func (n *Node) join(ctx context.Context, s *session, r *request) {
	room, ok := allowedRoom(s, r, s.grants.canJoin, "join")
	if !ok {
		return
	}
	since, err := parseSince(r.raw)
	if err != nil {
		s.sendError(r.id, codeBadRequest, err.Error())
		return
	}
	member := s.inRoom(room)
	if !member && s.roomCount() >= n.cfg.MaxRooms {
		s.sendError(r.id, codeBadRequest, fmt.Sprintf("a connection may be in at most %d rooms", n.cfg.MaxRooms))
		return
	}
	if member {
		// Already receiving the room live: nothing was missed, so no
		// history is replayed, and the position stands if it is of this
		// epoch. Attach and Detach bracket the look, so the member count
		// stays.
		err = n.bus.Attach(ctx, room, nil, func(h fanout.History) {
			recovered := since != nil && since.Epoch == h.Latest.Epoch && since.Offset <= h.Latest.Offset
			s.send(joinedFrame(r.id, room, h.Latest, recovered))
		})
		if err == nil {
			n.bus.Detach(room)
		}
	} else {
		err = n.bus.Attach(ctx, room, since, func(h fanout.History) {
			for i := range h.Missed {
				s.send(messageFrame(&h.Missed[i]))
			}
			n.hub.Join(room, s.conn)
			s.addRoom(room)
			s.send(joinedFrame(r.id, room, h.Latest, h.Recovered))
		})
	}
	if err != nil {
		s.sendError(r.id, codeUnavailable, "cannot join "+room+" now: "+err.Error())
	}
}

func joinedFrame(id []byte, room string, p fanout.Position, recovered bool) []byte {
	return encode(func(e *encoder) {
		e.begin("joined").str("room", room).str("epoch", p.Epoch).uint("offset", p.Offset).bool("recovered", recovered).id(id)
	})
}

var errSince = errors.New(`"since" must be {"epoch": string, "offset": integer >= 0}`)

// parseSince reads join's optional "since".
func parseSince(msg []byte) (*fanout.Position, error) {
	raw, present := getRaw(msg, "since")
	if !present || string(raw) == "null" {
		return nil, nil
	}
	epoch, hasEpoch, ok := getString(raw, "epoch")
	offset, hasOffset, okOffset := getInt(raw, "offset")
	if !hasEpoch || !ok || !hasOffset || !okOffset || offset < 0 {
		return nil, errSince
	}
	return &fanout.Position{Epoch: epoch, Offset: uint64(offset)}, nil
}

func (n *Node) leave(s *session, r *request) {
	room, ok := needRoom(s, r)
	if !ok {
		return
	}
	if s.removeRoom(room) {
		n.leaveRoom(s.conn, room)
	}
	s.send(encode(func(e *encoder) { e.begin("left").str("room", room).id(r.id) }))
}

// leaveRoom takes a connection out of a room: the Hub's member and the
// Bus's count go together, for a leave and for a close alike.
func (n *Node) leaveRoom(c *netloop.Conn, room string) {
	if removed, _ := n.hub.Leave(room, c); removed {
		n.bus.Detach(room)
	}
}

func (n *Node) publish(ctx context.Context, s *session, r *request) {
	room, ok := allowedRoom(s, r, s.grants.canPublish, "publish to")
	if !ok {
		return
	}
	data, ok := getRaw(r.raw, "data")
	if !ok {
		s.sendError(r.id, codeBadRequest, "publish needs data")
		return
	}
	offset, err := n.publishData(ctx, room, s.user, data)
	if err != nil {
		s.sendError(r.id, codeUnavailable, "cannot publish now: "+err.Error())
		return
	}
	s.send(encode(func(e *encoder) { e.begin("ack").str("room", room).uint("offset", offset).id(r.id) }))
}

// publishData is the one way into a room, for sockets and the HTTP API.
func (n *Node) publishData(ctx context.Context, room, from string, data []byte) (uint64, error) {
	defer n.metrics.publishDuration.UpdateDuration(time.Now())
	return n.bus.Publish(ctx, room, from, data)
}

func (n *Node) aiQuery(ctx context.Context, s *session, r *request) {
	if !s.grants.canAsk() {
		s.sendError(r.id, codeForbidden, "not allowed to ask the AI")
		return
	}
	message, _, ok := getString(r.raw, "message")
	if !ok || message == "" {
		s.sendError(r.id, codeBadRequest, "ai-query needs a message string")
		return
	}
	model, _, ok := getString(r.raw, "model")
	if !ok {
		s.sendError(r.id, codeBadRequest, `"model" must be a string`)
		return
	}
	var room string
	if r.room != nil {
		room = string(r.room)
		if !s.grants.canPublish(room) {
			s.sendError(r.id, codeForbidden, "not allowed to stream an answer to "+room)
			return
		}
	}
	job := &queue.Job{ID: queue.NewID(), Owner: s.user, Message: message, Model: model, Room: room, Conn: n.connRef(s)}
	err := n.relay.start(s, job, func() error {
		return n.ai.Enqueue(ctx, job, func(t queue.Ticket) {
			n.metrics.aiJob(job.Queue, "queued")
			s.send(encode(func(e *encoder) {
				e.begin("queued").str("job", job.ID).str("queue", job.Queue).
					int("position", int64(t.Position)).int("estimatedWaitMs", t.EstimatedWait.Milliseconds()).id(r.id)
			}))
		})
	})
	switch {
	case err == nil:
	case errors.Is(err, queue.ErrLost):
		s.send(aiErrorFrame(job, err.Error()))
	case errors.Is(err, queue.ErrUserLimit):
		s.sendError(r.id, codeRateLimited, err.Error())
	default:
		s.sendError(r.id, codeUnavailable, "cannot queue the question now: "+err.Error())
	}
}

// needJob reads the "job" field.
func needJob(s *session, r *request) (string, bool) {
	id, _, ok := getString(r.raw, "job")
	if !ok || id == "" {
		s.sendError(r.id, codeBadRequest, fmt.Sprintf("%s needs a job id", r.typ))
		return "", false
	}
	return id, true
}

// ownedAnswer looks a job up for cancel and resume, answering not_found or
// forbidden itself. It reads no chunks and changes nothing: a refused
// request leaves the job as it was for everyone else.
func (n *Node) ownedAnswer(ctx context.Context, s *session, r *request, id string) (*queue.Job, bool) {
	a, err := n.ai.Answer(ctx, id, math.MaxInt32)
	switch {
	case errors.Is(err, queue.ErrNotFound):
		s.sendError(r.id, codeNotFound, "no such job (unknown, or expired)")
		return nil, false
	case err != nil:
		s.sendError(r.id, codeUnavailable, "cannot look the job up now: "+err.Error())
		return nil, false
	case !s.owns(a.Job.Owner):
		s.sendError(r.id, codeForbidden, "the job belongs to another user")
		return nil, false
	}
	return &a.Job, true
}

func (n *Node) aiCancel(ctx context.Context, s *session, r *request) {
	id, ok := needJob(s, r)
	if !ok {
		return
	}
	job, ok := n.ownedAnswer(ctx, s, r, id)
	if !ok {
		return
	}
	err := n.relay.cancel(s, job, func() error {
		_, err := n.ai.Cancel(ctx, id)
		return err
	})
	switch {
	case errors.Is(err, queue.ErrNotFound):
		s.sendError(r.id, codeNotFound, "the job has already ended")
	case err != nil:
		s.sendError(r.id, codeUnavailable, "cannot cancel now: "+err.Error())
	}
}

func (n *Node) aiResume(ctx context.Context, s *session, r *request) {
	id, ok := needJob(s, r)
	if !ok {
		return
	}
	seq, present, ok := getInt(r.raw, "seq")
	if !present || !ok || seq < -1 {
		s.sendError(r.id, codeBadRequest, `ai-resume needs "seq": the last seq held, or -1`)
		return
	}
	job, ok := n.ownedAnswer(ctx, s, r, id)
	if !ok {
		return
	}
	after := int(min(seq, math.MaxInt32))
	err := n.relay.resume(s, job, after, func() (queue.Answer, error) {
		if job.Room != "" && n.hub.IsMember(job.Room, s.conn) {
			return n.ai.Answer(ctx, id, after) // the room brings the rest
		}
		return n.ai.Attach(ctx, id, after)
	})
	switch {
	case errors.Is(err, queue.ErrNotFound):
		s.sendError(r.id, codeNotFound, "no such job (unknown, or expired)")
	case err != nil:
		s.sendError(r.id, codeUnavailable, "cannot resume now: "+err.Error())
	}
}
