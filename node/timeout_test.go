package node

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/edgehub/edgehub/fanout"
)

// stuckBus is a bus whose Publish and Attach never answer, like a Redis
// that stopped responding: they return only when the request's context
// ends. It reports how long each call's context had left.
type stuckBus struct {
	fanout.Bus
	left chan time.Duration
}

func (b *stuckBus) wait(ctx context.Context) error {
	d, ok := ctx.Deadline()
	if !ok {
		d = time.Now().Add(time.Hour) // no deadline: reported as an hour
	}
	b.left <- time.Until(d)
	<-ctx.Done()
	return ctx.Err()
}

func (b *stuckBus) Publish(ctx context.Context, _, _ string, _ []byte) (uint64, error) {
	return 0, b.wait(ctx)
}

func (b *stuckBus) Attach(ctx context.Context, _ string, _ *fanout.Position, _ func(fanout.History)) error {
	return b.wait(ctx)
}

// startNode runs a node on a free loopback port until the test ends.
func startNode(t *testing.T, cfg Config, wrap func(fanout.Bus) fanout.Bus) *Node {
	t.Helper()
	cfg.Listen = "127.0.0.1:0"
	cfg.DrainTimeout = time.Second
	n, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	n.bus = wrap(n.bus)
	if err := n.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return n
}

// A request whose bus call does not answer is answered unavailable once
// -request-timeout passes, and frees its goroutine.
func TestRequestTimeout(t *testing.T) {
	t.Parallel()
	const timeout = 200 * time.Millisecond
	bus := &stuckBus{left: make(chan time.Duration, 2)}
	n := startNode(t, Config{RequestTimeout: timeout}, func(b fanout.Bus) fanout.Bus {
		bus.Bus = b
		return bus
	})
	conn, br, _, err := ws.Dial(context.Background(), "ws://"+n.Addr().String()+"/ws")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var rd io.Reader = conn
	if br != nil { // the welcome may have come with the handshake answer
		rd = io.MultiReader(br, conn)
	}
	read := func() map[string]any {
		t.Helper()
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		b, err := wsutil.ReadServerText(struct {
			io.Reader
			io.Writer
		}{rd, conn})
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	if m := read(); m["type"] != "welcome" {
		t.Fatalf("first message %v", m)
	}
	for _, req := range []string{
		`{"type":"publish","room":"r","data":1,"id":"p"}`,
		`{"type":"join","room":"r","id":"j"}`,
	} {
		if err := wsutil.WriteClientText(conn, []byte(req)); err != nil {
			t.Fatal(err)
		}
		if left := <-bus.left; left <= 0 || left > timeout {
			t.Errorf("%s: the bus call's context has %v left, want at most %v", req, left, timeout)
		}
		if m := read(); m["type"] != "error" || m["code"] != "unavailable" {
			t.Errorf("%s: got %v, want error unavailable", req, m)
		}
	}
}
