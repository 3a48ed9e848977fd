package node

import (
	"context"
	"crypto/hmac"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"path"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"

	"github.com/edgehub/edgehub/fanout"
	"github.com/edgehub/edgehub/netloop"
	"github.com/edgehub/edgehub/queue"
)

// Node is one edgehub node.
type Node struct {
	cfg     Config
	log     *slog.Logger
	srv     *netloop.Server
	hub     *fanout.Hub
	bus     fanout.Bus
	ai      queue.Queue
	relay   *aiRelay
	verify  *verifier // nil without auth
	metrics *nodeMetrics
	mux     *http.ServeMux
	ln      net.Listener

	started  time.Time
	draining atomic.Bool
	connKey  [32]byte      // random per process: derives the connections' secret ids
	internal *internalHTTP // -internal-listen; nil without (internal.go)
}

// New builds a node from cfg; Listen and Run start it.
func New(cfg Config, log *slog.Logger) (*Node, error) {
	cfg = cfg.withDefaults()
	n := &Node{cfg: cfg, log: log, hub: fanout.NewHub(), started: time.Now()}
	_, _ = crand.Read(n.connKey[:])
	if cfg.authEnabled() {
		n.verify = newVerifier(cfg.Secret, cfg.AllowNoExp)
	}
	n.metrics = newNodeMetrics(n)
	n.relay = newRelay(n)
	var err error
	if n.bus, err = n.newBus(); err != nil {
		return nil, err
	}
	if n.ai, err = n.newQueue(); err != nil {
		return nil, err
	}
	n.srv, err = netloop.New(netloop.Config{
		MaxMessage:     cfg.MaxMessage,
		MaxQueue:       cfg.MaxQueue,
		Heartbeat:      cfg.Heartbeat,
		MaxRequestBody: cfg.MaxMessage,
		SendBuffer:     cfg.SendBuffer,
		CloseLinger:    cfg.CloseLinger,
		Metrics:        n.metrics.set,
	}, n)
	if err != nil {
		return nil, err
	}
	n.mux = n.routes()
	return n, nil
}

// Listen binds the node's address; Run calls it when it was not called.
func (n *Node) Listen() error {
	ln, err := netloop.Listen(n.cfg.Listen)
	if err != nil {
		return err
	}
	if err := n.listenInternal(); err != nil {
		ln.Close()
		return err
	}
	n.ln = ln
	return nil
}

// Addr is the address the node listens on, after Listen.
func (n *Node) Addr() net.Addr { return n.ln.Addr() }

// Run serves until ctx is done, then drains: every client gets "drain" and
// close 1001, and Run returns once they are gone or after DrainTimeout.
func (n *Node) Run(ctx context.Context) error {
	if n.ln == nil {
		if err := n.Listen(); err != nil {
			return err
		}
	}
	bus := "memory"
	if n.cfg.Redis != "" {
		bus = "redis"
	}
	n.log.Info("edgehub node serving", "addr", n.ln.Addr().String(), "node", n.cfg.NodeID,
		"auth", n.verify != nil, "bus", bus)
	n.warnFileLimit()
	n.serveInternal()
	if n.verify == nil {
		n.log.Warn("auth is off: every connection may join, publish and ask anything (set -secret to check tokens)")
	}
	regCtx, stopRegister := context.WithCancel(context.Background())
	defer stopRegister()
	go n.registerLoop(regCtx)
	served := make(chan error, 1)
	go func() { served <- n.srv.Serve(n.ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("event loop stopped: %w", err)
	case <-ctx.Done():
	}
	return n.drain()
}

// drain sends every client "drain" and closes it with 1001, waits for the
// connections to go, then stops everything.
func (n *Node) drain() error {
	n.draining.Store(true)
	start := time.Now()
	n.log.Info("draining", "connections", n.srv.OpenConns(), "timeout", n.cfg.DrainTimeout.String())
	n.srv.Each(func(c *netloop.Conn) {
		c.Send(encode(func(e *encoder) {
			e.begin("drain").int("retryAfterMs", retryAfter().Milliseconds()).str("reason", "node shutting down")
		}))
		c.Close(ws.StatusGoingAway, "node shutting down")
	})
	deadline := start.Add(n.cfg.DrainTimeout)
	for n.srv.OpenConns() > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	left := n.srv.OpenConns()
	ctx, cancel := context.WithTimeout(context.Background(), max(time.Until(deadline), 100*time.Millisecond))
	defer cancel()
	err := n.srv.Shutdown(ctx)
	_ = n.ai.Close()
	_ = n.bus.Close()
	n.closeInternal(ctx)
	n.log.Info("drained", "took", time.Since(start).Round(time.Millisecond).String(), "forced", left)
	return err
}

// retryAfter spreads reconnects: a fleet that loses a node should not see
// all of its clients come back in the same instant.
func retryAfter() time.Duration {
	return 500*time.Millisecond + rand.N(5*time.Second)
}

// Authorize implements netloop.Handler.
func (n *Node) Authorize(up *netloop.Upgrade) (any, *netloop.Rejection) {
	switch {
	case n.draining.Load():
		return nil, &netloop.Rejection{Status: http.StatusServiceUnavailable, Reason: "node is draining"}
	case n.srv.OpenConns() >= n.cfg.MaxConns:
		return nil, &netloop.Rejection{Status: http.StatusServiceUnavailable, Reason: "node is at capacity"}
	case !n.originAllowed(up.Header("Origin")):
		return nil, &netloop.Rejection{Status: http.StatusForbidden, Reason: "origin not allowed"}
	}
	s := newSession()
	if n.verify == nil {
		s.user = "anon:" + randomHex(6)
		s.grants = &anonymous
		return s, nil
	}
	token := up.Query("token")
	if token == "" {
		token = bearer(up.Header("Authorization"))
	}
	sub, g, err := n.verify.verify(token)
	if err != nil {
		return nil, &netloop.Rejection{Status: http.StatusUnauthorized, Reason: err.Error()}
	}
	switch revoked, err := n.revoked(g.jti); {
	case err != nil:
		return nil, &netloop.Rejection{Status: http.StatusServiceUnavailable, Reason: "cannot check the token now"}
	case revoked:
		return nil, &netloop.Rejection{Status: http.StatusUnauthorized, Reason: errRevoked.Error()}
	}
	s.user, s.grants = sub, &g
	return s, nil
}

// originAllowed: with an allow-list, a browser's Origin must match one of
// its patterns (path.Match syntax: "https://*.example.com"). Clients that
// send no Origin are not browsers, and cross-site WebSocket hijacking is a
// browser attack, so they pass.
func (n *Node) originAllowed(origin string) bool {
	if len(n.cfg.AllowedOrigins) == 0 || origin == "" {
		return true
	}
	for _, p := range n.cfg.AllowedOrigins {
		if ok, _ := path.Match(strings.ToLower(p), strings.ToLower(origin)); ok {
			return true
		}
	}
	return false
}

// OnOpen implements netloop.Handler.
func (n *Node) OnOpen(c *netloop.Conn) {
	s := c.Session().(*session)
	s.conn = c
	s.send(encode(func(e *encoder) {
		id := n.connSecret(c)
		e.begin("welcome").str("conn", hex.EncodeToString(id[:])).str("node", n.cfg.NodeID).
			int("heartbeatMs", n.cfg.Heartbeat.Milliseconds()).str("user", s.user)
	}))
}

// connSecret is a connection's unguessable id, the welcome's conn: an
// HMAC of its number under the node's random key, so that a session does
// not have to keep 16 random bytes for it.
func (n *Node) connSecret(c *netloop.Conn) [16]byte {
	var num [8]byte
	binary.BigEndian.PutUint64(num[:], c.ID())
	mac := hmac.New(sha256.New, n.connKey[:])
	mac.Write(num[:])
	var id [16]byte
	copy(id[:], mac.Sum(nil))
	return id
}

// OnText implements netloop.Handler.
func (n *Node) OnText(c *netloop.Conn, msg []byte) {
	n.handle(c.Session().(*session), msg)
}

// OnClose implements netloop.Handler.
func (n *Node) OnClose(c *netloop.Conn) {
	s := c.Session().(*session)
	rooms, jobs := s.detach()
	for _, room := range rooms {
		n.leaveRoom(c, room)
	}
	n.relay.forget(c, jobs)
}

// ServeHTTP implements netloop.Handler.
func (n *Node) ServeHTTP(w http.ResponseWriter, r *http.Request) { n.mux.ServeHTTP(w, r) }
