package node

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/buger/jsonparser"
	"github.com/gobwas/ws"

	"github.com/edgehub/edgehub/fanout"
	"github.com/edgehub/edgehub/frame"
	"github.com/edgehub/edgehub/netloop"
)

// registerInterval is how often a node refreshes its fleet entry; the
// Redis bus drops entries not refreshed for a few intervals.
const registerInterval = 5 * time.Second

// newBus is the node's Bus: Redis when -redis is set (a fleet node), else
// the in-memory bus of a single node.
func (n *Node) newBus() (fanout.Bus, error) {
	cfg := n.cfg
	// A replay never takes more than half the connection's queue, so a
	// recovery cannot cut the client off with 1013 (and loop on every
	// reconnect): it answers recovered false instead.
	budget := cfg.MaxQueue / 2
	if cfg.Redis == "" {
		return fanout.NewMemory(fanout.MemoryConfig{
			NodeID: cfg.NodeID, HistorySize: cfg.HistorySize, HistoryTTL: cfg.HistoryTTL,
			RecoveryMax: cfg.RecoveryMax, RecoveryBytes: budget,
		}, n), nil
	}
	return fanout.NewRedis(fanout.RedisConfig{
		URLs: cfg.Redis, Prefix: cfg.RedisPrefix, NodeID: cfg.NodeID,
		HistorySize: cfg.HistorySize, HistoryTTL: cfg.HistoryTTL,
		RecoveryMax: cfg.RecoveryMax, RecoveryBytes: budget,
		Metrics: n.metrics.set,
	}, n)
}

// Deliver implements fanout.Receiver: one frame per message, shared by
// every local member of the room.
func (n *Node) Deliver(m *fanout.Message) {
	n.hub.Broadcast(m.Room, messageFrame(m))
}

// messageFrame is a room message as a frame: the bus's ready-made text
// when it has one, else built from the fields.
func messageFrame(m *fanout.Message) []byte {
	if m.Text != nil {
		return frame.New(ws.OpText, m.Text)
	}
	return encode(func(e *encoder) {
		e.begin("message").str("room", m.Room).uint("offset", m.Offset).str("from", m.From).raw("data", m.Data)
	})
}

// Relayed implements fanout.Receiver: a frame for every local member.
func (n *Node) Relayed(room string, payload []byte) {
	n.hub.Broadcast(room, frame.New(ws.OpText, payload))
}

// Addressed implements fanout.Receiver: fleet commands for this node, and
// frames for one of its connections (the AI relay's).
func (n *Node) Addressed(payload []byte) {
	kind, _ := jsonparser.GetString(payload, "kind")
	switch kind {
	case "revoke":
		jti, _ := jsonparser.GetString(payload, "jti")
		n.closeRevoked(jti)
	default:
		n.relay.addressed(payload)
	}
}

// closeRevoked closes the connections opened with token id jti, with 1008.
func (n *Node) closeRevoked(jti string) {
	if jti == "" {
		return
	}
	closed := 0
	n.srv.Each(func(c *netloop.Conn) {
		if s, ok := c.Session().(*session); ok && s.grants.jti == jti {
			c.Close(ws.StatusPolicyViolation, "token revoked")
			closed++
		}
	})
	if closed > 0 {
		n.log.Info("closed connections of a revoked token", "jti", jti, "connections", closed)
	}
}

// revoked reports whether the token id was revoked; a node that cannot
// tell refuses the connection rather than let a revoked token in.
func (n *Node) revoked(jti string) (bool, error) {
	if jti == "" {
		return false, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.RequestTimeout)
	defer cancel()
	return n.bus.Revoked(ctx, jti)
}

// registerLoop keeps this node's fleet entry fresh until ctx ends.
func (n *Node) registerLoop(ctx context.Context) {
	t := time.NewTicker(registerInterval)
	defer t.Stop()
	for {
		rctx, cancel := context.WithTimeout(ctx, registerInterval)
		err := n.bus.Register(rctx, fanout.NodeInfo{
			ID: n.cfg.NodeID, Addr: n.ln.Addr().String(), Conns: n.srv.OpenConns(), Rooms: n.hub.Rooms(),
		})
		cancel()
		if err != nil && ctx.Err() == nil {
			n.log.Warn("cannot refresh this node's fleet entry", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (n *Node) apiFleet(w http.ResponseWriter, r *http.Request) {
	nodes, err := n.bus.Nodes(r.Context())
	if err != nil {
		apiError(w, http.StatusServiceUnavailable, codeUnavailable, err.Error())
		return
	}
	for i := range nodes {
		if nodes[i].ID == n.cfg.NodeID { // this node's own figures are fresher
			nodes[i].Conns, nodes[i].Rooms = n.srv.OpenConns(), n.hub.Rooms()
		}
	}
	writeJSON(w, http.StatusOK, map[string][]fanout.NodeInfo{"nodes": nodes})
}

// apiRevoke: {"jti": J, "ttl": seconds}.
func (n *Node) apiRevoke(w http.ResponseWriter, r *http.Request) {
	var req struct {
		JTI string  `json:"jti"`
		TTL float64 `json:"ttl"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&req); err != nil || req.JTI == "" || req.TTL <= 0 {
		apiError(w, http.StatusBadRequest, codeBadRequest, `body must be {"jti": string, "ttl": seconds > 0}`)
		return
	}
	err := n.bus.Revoke(r.Context(), req.JTI, time.Duration(req.TTL*float64(time.Second)))
	if err != nil {
		apiError(w, http.StatusServiceUnavailable, codeUnavailable, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"revoked": req.JTI})
}

var errRevoked = errors.New("token revoked")
