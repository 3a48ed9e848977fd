package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/golang-jwt/jwt/v5"

	"github.com/edgehub/edgehub/cmd/edgehub/edgehubtest"
	"github.com/edgehub/edgehub/fanout/redistest"
)

// fleet starts n node processes on one Redis.
func fleet(t *testing.T, redisURL string, n int, args ...string) []*edgehubtest.Node {
	t.Helper()
	nodes := make([]*edgehubtest.Node, n)
	for i := range n {
		a := append([]string{"-redis", redisURL, "-node-id", fmt.Sprintf("node%d", i+1)}, args...)
		nodes[i] = edgehubtest.Start(t, a...)
	}
	return nodes
}

func skipFleetShort(t *testing.T) {
	if testing.Short() {
		t.Skip("fleet end-to-end tests in -short")
	}
}

// messages reads until c holds n room messages of room, and returns their
// offsets in arrival order.
func (c *wsClient) messages(t testing.TB, room string, n int) []int64 {
	t.Helper()
	var got []int64
	for len(got) < n {
		m, err := c.read(10 * time.Second)
		if err != nil {
			t.Fatalf("after %d of %d messages: %v", len(got), n, err)
		}
		if m.Type == "message" && m.str(t, "room") == room {
			got = append(got, m.num(t, "offset"))
		}
	}
	return got
}

func wantSequence(t testing.TB, who string, got []int64, from, to int64) {
	t.Helper()
	want := make([]int64, 0, to-from+1)
	for o := from; o <= to; o++ {
		want = append(want, o)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("%s got offsets %v, want %d..%d exactly once, in order", who, got, from, to)
	}
}

// Three nodes on one Redis: every publish, from any node, reaches every
// member on every node exactly once, in offset order.
// On a Redis Cluster of three masters the same holds, with sharded pub/sub.
func TestFleetFanoutAcrossNodes(t *testing.T) {
	skipFleetShort(t)
	t.Parallel()
	t.Run("one Redis", func(t *testing.T) {
		t.Parallel()
		fanoutAcrossNodes(t, redistest.Start(t).URL())
	})
	t.Run("Redis Cluster", func(t *testing.T) {
		t.Parallel()
		fanoutAcrossNodes(t, redistest.StartCluster(t, 3).URL())
	})
}

func fanoutAcrossNodes(t *testing.T, redisURL string) {
	nodes := fleet(t, redisURL, 3)
	room := uniqueRoom("fleet")
	var members []*wsClient
	for i := range 15 {
		c := dial(t, nodes[i%3])
		c.join(t, room)
		members = append(members, c)
	}
	const perNode = 20
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range perNode {
				code, _, body := httpDo(t, "POST", n.HTTP+"/api/publish", "", fmt.Appendf(nil, `{"room":%q,"data":{"node":%d,"k":%d}}`, room, i, k))
				if code != http.StatusOK {
					t.Errorf("publish on node %d: %d %s", i, code, body)
				}
			}
		}()
	}
	wg.Wait()
	for i, c := range members {
		wantSequence(t, fmt.Sprintf("member %d (node %d)", i, i%3+1), c.messages(t, room, 3*perNode), 1, 3*perNode)
		c.expectNothing(t, 100*time.Millisecond)
	}
	code, _, body := httpDo(t, "GET", nodes[0].HTTP+"/api/fleet", "", nil)
	var f struct {
		Nodes []struct {
			ID    string `json:"id"`
			Conns int    `json:"conns"`
		} `json:"nodes"`
	}
	if code != http.StatusOK || json.Unmarshal(body, &f) != nil || len(f.Nodes) != 3 {
		t.Fatalf("/api/fleet = %d %s, want the 3 nodes", code, body)
	}
}

// A client that leaves node A and joins on node B with its position
// recovers exactly what it missed; after the history is lost (FLUSHALL)
// it is told to reload, with a new epoch; past -recovery-max, too.
func TestFleetRecoveryOnAnotherNode(t *testing.T) {
	skipFleetShort(t)
	t.Parallel()
	srv := redistest.Start(t)
	nodes := fleet(t, srv.URL(), 2, "-recovery-max", "5")
	a, b := nodes[0], nodes[1]
	room := uniqueRoom("recover")
	publish := func(n int) {
		for range n {
			if code, _, body := httpDo(t, "POST", b.HTTP+"/api/publish", "", fmt.Appendf(nil, `{"room":%q,"data":1}`, room)); code != 200 {
				t.Fatalf("publish: %d %s", code, body)
			}
		}
	}
	c := dial(t, a)
	j := c.join(t, room)
	epoch := j.str(t, "epoch")
	publish(2)
	wantSequence(t, "member on A", c.messages(t, room, 2), 1, 2)
	c.close()

	publish(3) // offsets 3..5, missed
	d := dial(t, b)
	d.sendJSON(t, map[string]any{"type": "join", "room": room, "since": map[string]any{"epoch": epoch, "offset": 2}})
	got := d.messages(t, room, 3)
	wantSequence(t, "recovering member on B", got, 3, 5)
	if j := d.expect(t, "joined"); !j.boolean(t, "recovered") || j.num(t, "offset") != 5 || j.str(t, "epoch") != epoch {
		t.Fatalf("joined %s, want recovered at offset 5 of epoch %s", j, epoch)
	}

	publish(6) // 6..11: six missed, past -recovery-max 5
	e := dial(t, a)
	e.sendJSON(t, map[string]any{"type": "join", "room": room, "since": map[string]any{"epoch": epoch, "offset": 5}})
	if j := e.expect(t, "joined"); j.boolean(t, "recovered") {
		t.Fatalf("6 missed with -recovery-max 5 recovered: %s", j)
	}

	srv.MustDo("FLUSHALL")
	publish(1)
	f := dial(t, b)
	f.sendJSON(t, map[string]any{"type": "join", "room": room, "since": map[string]any{"epoch": epoch, "offset": 11}})
	j = f.expect(t, "joined")
	if j.boolean(t, "recovered") || j.str(t, "epoch") == epoch {
		t.Fatalf("after FLUSHALL joined %s: want recovered false and a new epoch", j)
	}
}

// kill -9 of Redis while clients publish over WebSocket, then a restart
// on the same port with its AOF: every acknowledged message reaches every
// member on every node once, in order; while Redis is down publishes get
// unavailable (never an ack) and /readyz is 503.
func TestFleetRedisFailover(t *testing.T) {
	skipFleetShort(t)
	t.Parallel()
	srv := redistest.Start(t)
	nodes := fleet(t, srv.URL(), 2)
	room := uniqueRoom("failover")
	member := dial(t, nodes[1])
	member.join(t, room)
	pub := dial(t, nodes[0])

	var (
		mu          sync.Mutex
		acked       []int64
		unavailable int
		stop        = make(chan struct{})
		done        = make(chan struct{})
	)
	go func() { // the publisher's reader: acks and errors
		defer close(done)
		for {
			m, err := pub.read(15 * time.Second)
			if err != nil {
				return
			}
			mu.Lock()
			switch m.Type {
			case "ack":
				acked = append(acked, m.num(t, "offset"))
			case "error":
				if m.str(t, "code") == "unavailable" {
					unavailable++
				}
			}
			mu.Unlock()
			select {
			case <-stop:
				return
			default:
			}
		}
	}()
	send := func(d time.Duration) {
		end := time.Now().Add(d)
		for i := 0; time.Now().Before(end); i++ {
			pub.send(t, fmt.Sprintf(`{"type":"publish","room":%q,"data":%d}`, room, i))
			time.Sleep(5 * time.Millisecond)
		}
	}
	send(500 * time.Millisecond)
	srv.Kill()
	send(500 * time.Millisecond)
	if code, _, _ := httpDo(t, "GET", nodes[0].HTTP+"/readyz", "", nil); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz with Redis down = %d, want 503", code)
	}
	srv.Restart()
	restarted := time.Now()
	resubscribed := make(chan time.Duration, 1)
	go func() { // how long the member's node takes to resubscribe (reported, not asserted)
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if v, _ := metricValue(metrics(t, nodes[1]), `edgehub_redis_resubscribes_total{shard="0"}`); v > 0 {
				resubscribed <- time.Since(restarted)
				return
			}
		}
		resubscribed <- -1
	}()
	send(2 * time.Second)
	pub.send(t, `{"type":"ping","id":"last"}`)
	time.Sleep(500 * time.Millisecond)
	close(stop)
	pub.send(t, `{"type":"ping"}`)
	<-done
	mu.Lock()
	defer mu.Unlock()
	if unavailable == 0 {
		t.Fatal("no publish was refused while Redis was down: the outage did not happen")
	}
	last := slices.Max(acked)
	got := member.messages(t, room, 0)
	for len(got) == 0 || got[len(got)-1] < last {
		m, err := member.read(10 * time.Second)
		if err != nil {
			t.Fatalf("member stopped at %v, last acked %d: %v", got[max(0, len(got)-3):], last, err)
		}
		if m.Type == "message" {
			got = append(got, m.num(t, "offset"))
		}
	}
	for i := 1; i < len(got); i++ {
		if got[i] != got[i-1]+1 {
			t.Fatalf("member got %d then %d: a gap, a duplicate or out of order", got[i-1], got[i])
		}
	}
	for _, a := range acked {
		if _, ok := slices.BinarySearch(got, a); !ok {
			t.Fatalf("acked offset %d never reached the member", a)
		}
	}
	rs := <-resubscribed
	if rs < 0 {
		t.Fatal("the member's node never counted a resubscribe after Redis came back")
	}
	t.Logf("FLEETFAILOVER acked=%d refused=%d delivered=%d, member's node resubscribed %v after the restart",
		len(acked), unavailable, len(got), rs.Round(time.Millisecond))
}

// POST /api/revoke on one node closes the token's connections on another
// with 1008, and the token is refused (401) from then on.
func TestFleetRevoke(t *testing.T) {
	skipFleetShort(t)
	t.Parallel()
	const secret, key = "fleet-secret", "fleet-key"
	nodes := fleet(t, redistest.Start(t).URL(), 2, "-secret", secret, "-api-key", key)
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": "mallory", "jti": "tok-" + strconv.FormatInt(time.Now().UnixNano(), 36),
		"exp": time.Now().Add(time.Hour).Unix(), "rooms": []string{"*"},
	}).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	c := dialToken(t, nodes[1], tok)
	var claims jwt.MapClaims
	_, _, _ = jwt.NewParser().ParseUnverified(tok, &claims)
	body := fmt.Appendf(nil, `{"jti":%q,"ttl":60}`, claims["jti"])
	if code, _, out := httpDo(t, "POST", nodes[0].HTTP+"/api/revoke", "Bearer "+key, body); code != http.StatusOK {
		t.Fatalf("/api/revoke = %d %s", code, out)
	}
	if code, _, _ := c.readClosed(t, 10*time.Second); code != ws.StatusPolicyViolation {
		t.Fatalf("revoked connection closed with %d, want 1008", code)
	}
	if _, err := dialWS(t, nodes[0], "token="+tok, nil); err == nil {
		t.Fatal("a revoked token connected")
	}
}
