package loadgen_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/edgehub/edgehub/bench/loadgen"
	"github.com/edgehub/edgehub/cmd/edgehub/edgehubtest"
)

func TestMain(m *testing.M) { edgehubtest.Main(m) }

// These tests run the loader against the real node, built from this
// module. They check counts and the summary's shape, never a duration.

func runAgainst(t *testing.T, node *edgehubtest.Node, cfg loadgen.Config) loadgen.Summary {
	t.Helper()
	cfg.URL = node.WS
	cfg.ServerPID = node.PID
	sum, err := loadgen.Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.MarshalIndent(sum, "", "  ")
	t.Logf("summary: %s", b)
	if sum.Connections.Connected != int64(cfg.Conns) && cfg.Scenario != "storm" {
		t.Errorf("connected %d of %d", sum.Connections.Connected, cfg.Conns)
	}
	if sum.Connections.Failed != 0 || sum.Connections.ClosedEarly != 0 {
		t.Errorf("failed %d, closed by the server %d: %v",
			sum.Connections.Failed, sum.Connections.ClosedEarly, sum.Errors)
	}
	return sum
}

func skipShort(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped in -short mode: builds and runs edgehub")
	}
}

func TestIdleAgainstNode(t *testing.T) {
	skipShort(t)
	node := edgehubtest.Start(t)
	sum := runAgainst(t, node, loadgen.Config{
		Scenario: "idle", Conns: 100, Rooms: 10, Step: 25, Duration: 200 * time.Millisecond,
	})
	c := sum.Connections
	if c.Joined != 100 || c.Upgrade.Count != 100 || c.UpgradesPerSec <= 0 {
		t.Errorf("connections = %+v", c)
	}
	srv := sum.Server
	if srv == nil || len(srv.RSSCurve) != 5 || srv.RSSBeforeBytes <= 0 || srv.ConnsActiveAfter != 100 {
		t.Fatalf("server = %+v", srv)
	}
}

func TestFanoutAgainstNode(t *testing.T) {
	skipShort(t)
	node := edgehubtest.Start(t)
	// 20 messages (10/s for 2 s) to 50 subscribers in one room.
	sum := runAgainst(t, node, loadgen.Config{
		Scenario: "fanout", Conns: 50, Rooms: 1, Rate: 10, Duration: 2 * time.Second,
	})
	d := sum.Delivery
	if d == nil {
		t.Fatal("no delivery section")
	}
	if d.Published != 20 || d.PublishErrors != 0 || d.Expected != 1000 || d.Received != 1000 ||
		d.Lost != 0 || d.Duplicates != 0 || d.Latency.Count != 1000 {
		t.Errorf("delivery = %+v", d)
	}
	if sum.Server.MessagesOut < 1000 {
		t.Errorf("node counted %v messages out", sum.Server.MessagesOut)
	}
}

func TestRoomsAgainstNode(t *testing.T) {
	skipShort(t)
	node := edgehubtest.Start(t)
	// Each of 40 connections publishes twice (1/s for 2 s) into its room of 10.
	sum := runAgainst(t, node, loadgen.Config{
		Scenario: "rooms", Conns: 40, Rooms: 4, Rate: 1, Duration: 2 * time.Second,
	})
	d := sum.Delivery
	if d.Published != 80 || d.Acks != 80 || d.Expected != 800 || d.Lost != 0 || d.Duplicates != 0 {
		t.Errorf("delivery = %+v", d)
	}
}

func TestStormAgainstNode(t *testing.T) {
	skipShort(t)
	node := edgehubtest.Start(t)
	sum := runAgainst(t, node, loadgen.Config{
		Scenario: "storm", Conns: 10, Lifetime: 50 * time.Millisecond, Duration: time.Second,
	})
	if sum.Storm == nil || sum.Storm.Cycles < 10 {
		t.Errorf("storm = %+v", sum.Storm)
	}
	if sum.Server.ConnsActiveAfter != 0 {
		t.Errorf("node still counts %v connections after the storm", sum.Server.ConnsActiveAfter)
	}
}

func TestAIAgainstNode(t *testing.T) {
	skipShort(t)
	node := edgehubtest.Start(t, "-echo-delay", "1ms")
	sum := runAgainst(t, node, loadgen.Config{
		Scenario: "ai", Conns: 4, Words: 5, Duration: 500 * time.Millisecond,
	})
	a := sum.AI
	if a == nil || a.Completed == 0 || a.Failed != 0 || a.Unfinished != 0 || a.SeqGaps != 0 || a.WrongLength != 0 {
		t.Errorf("ai = %+v", a)
	}
	if a != nil && a.FirstChunk.Count != a.Completed {
		t.Errorf("%d first chunks for %d answers", a.FirstChunk.Count, a.Completed)
	}
}
