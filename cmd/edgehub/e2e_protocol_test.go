package main

// Protocol v1 on one node without auth: welcome, rooms, recovery, errors and
// the AI messages (PROTOCOL.md "Messages" and "Recovery").

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/edgehub/edgehub/cmd/edgehub/edgehubtest"
)

func TestWelcome(t *testing.T) {
	t.Parallel()
	n := edgehubtest.Start(t, "-heartbeat", "3s")
	a, b := dial(t, n), dial(t, n)
	var conns, nodes []string
	for _, c := range []*wsClient{a, b} {
		w := c.welcome
		conns = append(conns, w.str(t, "conn"))
		nodes = append(nodes, w.str(t, "node"))
		if hb := w.num(t, "heartbeatMs"); hb != 3000 {
			t.Errorf("heartbeatMs = %d with -heartbeat 3s, want 3000: %s", hb, w)
		}
	}
	if conns[0] == "" || nodes[0] == "" {
		t.Errorf("empty conn or node: %s", a.welcome)
	}
	if conns[0] == conns[1] {
		t.Errorf("two connections have the same conn id %q", conns[0])
	}
	if nodes[0] != nodes[1] {
		t.Errorf("one node reports two ids: %q, %q", nodes[0], nodes[1])
	}
}

// publishMsg is a publish request with data inserted verbatim.
func publishMsg(room, id, data string) string {
	return fmt.Sprintf(`{"type":"publish","id":%q,"room":%q,"data":%s}`, id, room, data)
}

func TestRooms(t *testing.T) {
	t.Parallel()
	n := edgehubtest.Start(t)

	t.Run("publish-delivery", func(t *testing.T) {
		t.Parallel()
		room := uniqueRoom("deliver")
		a, b, outsider := dial(t, n), dial(t, n), dial(t, n)

		ja := a.join(t, room)
		if off := ja.num(t, "offset"); off != 0 {
			t.Errorf("joined a new room: offset %d, want 0: %s", off, ja)
		}
		if ja.boolean(t, "recovered") {
			t.Errorf("joined without since: recovered true: %s", ja)
		}
		epoch := ja.str(t, "epoch") // a string, checked by str
		if jb := b.join(t, room); jb.str(t, "epoch") != epoch {
			t.Errorf("two joins of one room see epochs %q and %s", epoch, jb)
		}

		// Data with odd spacing, escapes, raw unicode and nesting: the
		// server must relay the value's bytes unchanged.
		datas := []string{
			`{ "a" :[1, [2,[ 3 , {"x":null}]] ],"s":"caf\u00e9 \"q\" \\ \/ ✓ 😀\n",  "t":true }`,
			`"\ud83d\ude00 tab\there \u2028 é"`,
			`[ 1.50 , -0.0e-0,[[[ ]]], {}, "" ]`,
		}
		for i, d := range datas {
			a.send(t, publishMsg(room, fmt.Sprintf("p%d", i+1), d))
		}

		// The publisher: three acks and its own three messages, in either
		// interleaving (PROTOCOL: "may arrive before or after it").
		var acks, own []*msg
		for len(acks)+len(own) < 2*len(datas) {
			m := a.next(t)
			switch m.Type {
			case "ack":
				acks = append(acks, m)
			case "message":
				own = append(own, m)
			default:
				t.Fatalf("publisher got %s", m)
			}
		}
		for i, m := range acks {
			if got, want := m.num(t, "offset"), int64(i+1); got != want {
				t.Errorf("ack %d: offset %d, want %d: %s", i, got, want, m)
			}
			if got, want := m.str(t, "id"), fmt.Sprintf("p%d", i+1); got != want {
				t.Errorf("ack %d: id %q, want %q", i, got, want)
			}
			if m.str(t, "room") != room {
				t.Errorf("ack without the room: %s", m)
			}
		}
		fromA := ""
		for _, c := range []struct {
			name string
			msgs []*msg
		}{{"publisher", own}, {"member", []*msg{b.next(t), b.next(t), b.next(t)}}} {
			for i, m := range c.msgs {
				if m.Type != "message" {
					t.Fatalf("%s: want message, got %s", c.name, m)
				}
				if got := m.num(t, "offset"); got != int64(i+1) {
					t.Errorf("%s: message %d has offset %d, want %d", c.name, i, got, i+1)
				}
				if m.str(t, "room") != room {
					t.Errorf("%s: message room: %s", c.name, m)
				}
				if got := m.field("data"); !bytes.Equal(got, []byte(datas[i])) {
					t.Errorf("%s: data not byte-for-byte:\n got %s\nwant %s", c.name, got, datas[i])
				}
				from := m.str(t, "from")
				if fromA == "" {
					fromA = from
				}
				if from != fromA {
					t.Errorf("%s: from changes between messages of one publisher: %q, %q", c.name, fromA, from)
				}
			}
		}
		connA := a.welcome.str(t, "conn")
		if !strings.HasPrefix(fromA, "anon:") || len(fromA) == len("anon:") {
			t.Errorf("from = %q, want anon:<id>", fromA)
		}
		if strings.Contains(fromA, connA) {
			t.Errorf("from %q exposes the secret conn id %q", fromA, connA)
		}

		// Another publisher has another anon id.
		b.send(t, publishMsg(room, "pb", `4`))
		var fromB string
		for _, m := range append(b.sync(t), b.sync(t)...) { // ack and message, any order
			if m.Type == "message" {
				fromB = m.str(t, "from")
			}
		}
		if fromB == "" || fromB == fromA {
			t.Errorf("second publisher: from %q, first %q: want distinct anon ids", fromB, fromA)
		}
		if m := a.expect(t, "message"); m.num(t, "offset") != 4 {
			t.Errorf("want offset 4, got %s", m)
		}
		if got := outsider.sync(t); len(got) != 0 {
			t.Errorf("a non-member got %d messages: %s", len(got), got[0])
		}
	})

	t.Run("leave", func(t *testing.T) {
		t.Parallel()
		room := uniqueRoom("leave")
		a, b := dial(t, n), dial(t, n)
		a.join(t, room)
		b.join(t, room)
		b.sendJSON(t, map[string]any{"type": "leave", "room": room, "id": "l1"})
		l := b.expect(t, "left")
		if l.str(t, "room") != room || l.str(t, "id") != "l1" {
			t.Errorf("left reply: %s", l)
		}
		a.send(t, publishMsg(room, "x", `"after leave"`))
		for range 2 { // ack and own message
			if m := a.next(t); m.Type != "ack" && m.Type != "message" {
				t.Fatalf("publisher got %s", m)
			}
		}
		if got := b.sync(t); len(got) != 0 {
			t.Errorf("after leave, got %s", got[0])
		}
	})

	t.Run("publish-without-join", func(t *testing.T) {
		t.Parallel()
		room := uniqueRoom("nojoin")
		member, pub := dial(t, n), dial(t, n)
		member.join(t, room)
		pub.send(t, publishMsg(room, "nj", `{"k":1}`))
		ack := pub.expect(t, "ack")
		if ack.num(t, "offset") != 1 {
			t.Errorf("ack: %s", ack)
		}
		m := member.expect(t, "message")
		if m.num(t, "offset") != 1 || string(m.field("data")) != `{"k":1}` {
			t.Errorf("member got %s", m)
		}
		if got := pub.sync(t); len(got) != 0 {
			t.Errorf("a publisher that has not joined got %s", got[0])
		}
	})

	// PROTOCOL.md calls id "a string the reply echoes". It is silent on a
	// number; we assume the reply echoes whatever JSON value was sent.
	t.Run("id-echo", func(t *testing.T) {
		t.Parallel()
		room := uniqueRoom("ids")
		c := dial(t, n)
		for _, tc := range []struct{ req, reply, id string }{
			{`{"type":"ping","id":"abc"}`, "pong", `"abc"`},
			{`{"type":"ping","id":42}`, "pong", `42`},
			{fmt.Sprintf(`{"type":"join","room":%q,"id":"j\"1"}`, room), "joined", `"j\"1"`},
			{fmt.Sprintf(`{"id":7,"type":"leave","room":%q}`, room), "left", `7`},
			{fmt.Sprintf(`{"type":"publish","room":%q,"data":1,"id":"p-é"}`, room), "ack", `"p-é"`},
		} {
			c.send(t, tc.req)
			m := c.expect(t, tc.reply)
			if got := m.field("id"); !bytes.Equal(got, []byte(tc.id)) {
				t.Errorf("%s -> %s: id %s, want %s", tc.req, m, got, tc.id)
			}
		}
	})

	t.Run("two-publishers", func(t *testing.T) {
		t.Parallel()
		const perPub = 200
		room := uniqueRoom("pub2")
		m1, m2, p1, p2 := dial(t, n), dial(t, n), dial(t, n), dial(t, n)
		m1.join(t, room)
		m2.join(t, room)
		p1.join(t, room) // a publisher that is also a member
		members := []*wsClient{m1, m2, p1}

		var wg sync.WaitGroup
		results := make([][]*msg, len(members))
		errs := make([]error, len(members))
		for i, c := range members {
			wg.Go(func() {
				for len(results[i]) < 2*perPub {
					m, err := c.read(10 * time.Second)
					if err != nil {
						errs[i] = fmt.Errorf("after %d messages: %w", len(results[i]), err)
						return
					}
					if m.Type == "message" {
						results[i] = append(results[i], m)
					}
				}
			})
		}
		var ackWG sync.WaitGroup
		for pi, p := range []*wsClient{p1, p2} {
			ackWG.Go(func() {
				for k := range perPub {
					if err := p.sendErr(fmt.Sprintf(`{"type":"publish","room":%q,"data":{"p":%d,"k":%d}}`, room, pi, k)); err != nil {
						t.Errorf("publisher %d: %v", pi, err)
						return
					}
				}
			})
		}
		ackWG.Wait()
		// p2's acks are read here; p1's are skipped by its member reader.
		for k := 0; k < perPub; k++ {
			if _, err := p2.read(10 * time.Second); err != nil {
				t.Fatalf("publisher 2 ack %d: %v", k, err)
			}
		}
		wg.Wait()
		for i, got := range results {
			if errs[i] != nil {
				t.Errorf("member %d: %v", i, errs[i])
				continue
			}
			seen := map[string]bool{}
			var last int64
			for _, m := range got {
				off, _ := m.numOK("offset")
				if off <= last {
					t.Errorf("member %d: offset %d after %d (want increasing)", i, off, last)
				}
				last = off
				key := string(m.field("data"))
				if seen[key] {
					t.Errorf("member %d: %s twice", i, key)
				}
				seen[key] = true
			}
			if len(seen) != 2*perPub {
				t.Errorf("member %d: %d distinct messages, want %d", i, len(seen), 2*perPub)
			}
		}
	})
}

// publishN publishes count messages "<tag>-<k>" from c into room and reads
// the acks, returning the offsets. c must not be a member of room.
func publishN(t *testing.T, c *wsClient, room, tag string, count int) []int64 {
	t.Helper()
	var offs []int64
	for k := range count {
		c.send(t, publishMsg(room, "", strconv.Quote(fmt.Sprintf("%s-%d", tag, k))))
		offs = append(offs, c.expect(t, "ack").num(t, "offset"))
	}
	return offs
}

func TestRecovery(t *testing.T) {
	t.Parallel()

	// recover: a member sees `before` messages, leaves, `missed` more are
	// published, and it rejoins with since.
	recoverCase := func(t *testing.T, n *edgehubtest.Node, before, missed int) {
		room := uniqueRoom("recover")
		pub, b := dial(t, n), dial(t, n)
		j := b.join(t, room)
		epoch := j.str(t, "epoch")
		publishN(t, pub, room, "old", before)
		var last int64
		for range before {
			last = b.expect(t, "message").num(t, "offset")
		}
		b.close()
		offs := publishN(t, pub, room, "new", missed)

		b2 := dial(t, n)
		b2.sendJSON(t, map[string]any{"type": "join", "room": room, "since": map[string]any{"epoch": epoch, "offset": last}})
		for k := range missed {
			m := b2.expect(t, "message")
			if got := m.num(t, "offset"); got != offs[k] {
				t.Errorf("recovered message %d: offset %d, want %d", k, got, offs[k])
			}
			if got, want := string(m.field("data")), strconv.Quote(fmt.Sprintf("new-%d", k)); got != want {
				t.Errorf("recovered message %d: data %s, want %s", k, got, want)
			}
		}
		jr := b2.expect(t, "joined")
		if !jr.boolean(t, "recovered") || jr.num(t, "offset") != offs[len(offs)-1] || jr.str(t, "epoch") != epoch {
			t.Errorf("after recovery: %s, want recovered true, offset %d, epoch %q", jr, offs[len(offs)-1], epoch)
		}
		// Live messages continue after the recovered ones.
		publishN(t, pub, room, "live", 1)
		if m := b2.expect(t, "message"); m.num(t, "offset") != offs[len(offs)-1]+1 {
			t.Errorf("live after recovery: %s", m)
		}
	}

	t.Run("missed", func(t *testing.T) {
		t.Parallel()
		recoverCase(t, edgehubtest.Start(t), 5, 5)
	})

	// History keeps at most -history-size messages, and a recovery of
	// more than -recovery-max (default: the history size) is refused:
	// recovered false, nothing replayed.
	t.Run("history-size-3", func(t *testing.T) {
		t.Parallel()
		n := edgehubtest.Start(t, "-history-size", "3")
		recoverCase(t, n, 2, 3)

		room := uniqueRoom("recover")
		pub, b := dial(t, n), dial(t, n)
		epoch := b.join(t, room).str(t, "epoch")
		last := publishN(t, pub, room, "old", 1)[0]
		b.close()
		offs := publishN(t, pub, room, "new", 5)
		b2 := dial(t, n)
		b2.sendJSON(t, map[string]any{"type": "join", "room": room, "since": map[string]any{"epoch": epoch, "offset": last}})
		jr := b2.expect(t, "joined")
		if jr.boolean(t, "recovered") || jr.num(t, "offset") != offs[len(offs)-1] {
			t.Errorf("5 missed with -history-size 3: %s, want recovered false at offset %d and nothing replayed", jr, offs[len(offs)-1])
		}
	})

	t.Run("wrong-epoch-and-up-to-date", func(t *testing.T) {
		t.Parallel()
		n := edgehubtest.Start(t)
		room := uniqueRoom("epoch")
		pub := dial(t, n)
		publishN(t, pub, room, "m", 4)

		c := dial(t, n)
		epoch := c.join(t, room).str(t, "epoch")
		c.close()

		w := dial(t, n)
		w.sendJSON(t, map[string]any{"type": "join", "room": room, "since": map[string]any{"epoch": epoch + "-not", "offset": 2}})
		j := w.expect(t, "joined") // no message may come before it
		if j.boolean(t, "recovered") {
			t.Errorf("wrong epoch: %s, want recovered false", j)
		}
		if j.num(t, "offset") != 4 || j.str(t, "epoch") != epoch {
			t.Errorf("wrong epoch: %s, want the room's latest position %q/4", j, epoch)
		}
		if got := w.sync(t); len(got) != 0 {
			t.Errorf("wrong epoch: got %s after joined", got[0])
		}

		d := dial(t, n)
		d.sendJSON(t, map[string]any{"type": "join", "room": room, "since": map[string]any{"epoch": epoch, "offset": 4}})
		j = d.expect(t, "joined")
		if !j.boolean(t, "recovered") || j.num(t, "offset") != 4 {
			t.Errorf("since = latest: %s, want recovered true, offset 4, no messages", j)
		}
	})

	// A member of a room with no messages yet (epoch E, offset 0) drops;
	// messages are published; it rejoins with since {E, 0}. Nothing of the
	// history was lost, so PROTOCOL.md's epoch ("changes when its history
	// is lost") must not change and all messages are recovered.
	t.Run("empty-room-member-returns", func(t *testing.T) {
		t.Parallel()
		n := edgehubtest.Start(t)
		room := uniqueRoom("empty")
		a := dial(t, n)
		epoch := a.join(t, room).str(t, "epoch")
		a.close()
		time.Sleep(100 * time.Millisecond) // let the node see the disconnect
		pub := dial(t, n)
		offs := publishN(t, pub, room, "m", 3)

		b := dial(t, n)
		b.sendJSON(t, map[string]any{"type": "join", "room": room, "since": map[string]any{"epoch": epoch, "offset": 0}})
		for k := range offs {
			m := b.next(t)
			if m.Type != "message" || m.num(t, "offset") != offs[k] {
				t.Fatalf("recovery of an empty room's member: want message %d, got %s", offs[k], m)
			}
		}
		if j := b.expect(t, "joined"); !j.boolean(t, "recovered") || j.str(t, "epoch") != epoch {
			t.Errorf("recovery of an empty room's member: %s, want recovered true, epoch %q", j, epoch)
		}
	})
}

func TestErrors(t *testing.T) {
	t.Parallel()
	n := edgehubtest.Start(t)
	c := dial(t, n)
	for _, tc := range []struct {
		name, req, code string
	}{
		{"unknown-type", `{"type":"frobnicate","id":"u1"}`, "bad_request"},
		// PROTOCOL.md keeps the connection only for an unknown type; we
		// assume the same for JSON that does not parse or lacks fields.
		{"invalid-json", `{"type":"join",`, "bad_request"},
		{"not-an-object", `[1,2]`, "bad_request"},
		{"no-type", `{"room":"x"}`, "bad_request"},
		{"join-no-room", `{"type":"join","id":"j"}`, "bad_request"},
		{"publish-no-room", `{"type":"publish","data":1}`, "bad_request"},
		{"leave-no-room", `{"type":"leave"}`, "bad_request"},
		// A since that is not {"epoch": string, "offset": number} is a
		// malformed request (not a failed recovery): bad_request.
		{"join-since-string", `{"type":"join","room":"r-since","since":"yesterday"}`, "bad_request"},
		{"join-since-bad-offset", `{"type":"join","room":"r-since","since":{"epoch":"e","offset":"x"}}`, "bad_request"},
		{"ai-cancel-unknown", `{"type":"ai-cancel","job":"no-such-job"}`, "not_found"},
		{"ai-resume-unknown", `{"type":"ai-resume","job":"no-such-job","seq":-1}`, "not_found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c.send(t, tc.req)
			m := c.expectError(t, tc.code)
			if tc.name == "unknown-type" && m.str(t, "id") != "u1" {
				t.Errorf("error does not echo the request id: %s", m)
			}
			c.sync(t) // the connection still works, nothing else came
		})
	}
}

// aiChunks reads ai-chunk messages of job until done, skipping nothing
// else, and checks seq goes from first up by one. It returns the contents.
func aiChunks(t *testing.T, c *wsClient, job string, first int64, room string) []string {
	t.Helper()
	var words []string
	for seq := first; ; seq++ {
		m := c.expect(t, "ai-chunk")
		if m.str(t, "job") != job {
			t.Fatalf("chunk of another job: %s", m)
		}
		if got := m.num(t, "seq"); got != seq {
			t.Fatalf("chunk seq %d, want %d: %s", got, seq, m)
		}
		if room != "" && (!m.has("room") || m.str(t, "room") != room) {
			t.Errorf("chunk of a room query without room %q: %s", room, m)
		}
		if room == "" && m.has("room") {
			t.Errorf("chunk of a private query has a room: %s", m)
		}
		words = append(words, m.str(t, "content"))
		if m.boolean(t, "done") {
			return words
		}
		if seq > 1000 {
			t.Fatal("no done chunk")
		}
	}
}

// trimmed: the echo backend answers "one word per chunk"; PROTOCOL.md does
// not say whether a chunk carries the separating space, so contents are
// compared without surrounding spaces.
func trimmed(ws []string) string {
	out := make([]string, len(ws))
	for i, w := range ws {
		out[i] = strings.TrimSpace(w)
	}
	return strings.Join(out, " ")
}

func askAI(t *testing.T, c *wsClient, req map[string]any) string {
	t.Helper()
	req["type"] = "ai-query"
	c.sendJSON(t, req)
	q := c.expect(t, "queued")
	job := q.str(t, "job")
	if job == "" || q.str(t, "queue") == "" {
		t.Errorf("queued without job or queue: %s", q)
	}
	q.num(t, "position")
	q.num(t, "estimatedWaitMs")
	if id, ok := req["id"]; ok && q.str(t, "id") != id {
		t.Errorf("queued does not echo id %v: %s", id, q)
	}
	return job
}

func TestAI(t *testing.T) {
	t.Parallel()
	n := edgehubtest.Start(t, "-echo-delay", "200ms")

	t.Run("stream", func(t *testing.T) {
		t.Parallel()
		c := dial(t, n)
		job := askAI(t, c, map[string]any{"message": "one two three four", "id": "q1"})
		if got := trimmed(aiChunks(t, c, job, 0, "")); got != "one two three four" {
			t.Errorf("answer %q, want the question's words", got)
		}
		c.expectNothing(t, quietTimeout)
	})

	t.Run("room", func(t *testing.T) {
		t.Parallel()
		room := uniqueRoom("ai")
		asker, member, outsider := dial(t, n), dial(t, n), dial(t, n)
		asker.join(t, room)
		member.join(t, room)
		job := askAI(t, asker, map[string]any{"message": "red green blue", "room": room})
		for _, c := range []*wsClient{asker, member} {
			if got := trimmed(aiChunks(t, c, job, 0, room)); got != "red green blue" {
				t.Errorf("room answer %q", got)
			}
		}
		if got := outsider.sync(t); len(got) != 0 {
			t.Errorf("a non-member got %s", got[0])
		}
	})

	t.Run("cancel", func(t *testing.T) {
		t.Parallel()
		c := dial(t, n)
		job := askAI(t, c, map[string]any{"message": strings.Repeat("word ", 30)})
		first := c.expect(t, "ai-chunk")
		if first.boolean(t, "done") {
			t.Fatalf("first chunk of 30 done: %s", first)
		}
		c.sendJSON(t, map[string]any{"type": "ai-cancel", "job": job})
		for {
			m := c.next(t)
			if m.Type == "ai-chunk" && !m.boolean(t, "done") {
				continue // in flight before the cancel
			}
			if m.Type != "ai-error" || m.str(t, "job") != job || m.str(t, "error") != "cancelled" {
				t.Fatalf("want ai-error cancelled for %s, got %s", job, m)
			}
			break
		}
		c.expectNothing(t, 3*200*time.Millisecond)
		c.sendJSON(t, map[string]any{"type": "ai-cancel", "job": job})
		c.expectError(t, "not_found") // a finished job
	})

	t.Run("resume", func(t *testing.T) {
		t.Parallel()
		words := "alpha beta gamma delta epsilon"
		a := dial(t, n)
		job := askAI(t, a, map[string]any{"message": words})
		a.expect(t, "ai-chunk")
		a.close() // the asker goes away mid-answer

		b := dial(t, n) // without auth, whoever holds the job id may resume
		b.sendJSON(t, map[string]any{"type": "ai-resume", "job": job, "seq": -1})
		if got := trimmed(aiChunks(t, b, job, 0, "")); got != words {
			t.Errorf("resumed answer %q, want %q", got, words)
		}
		b.sendJSON(t, map[string]any{"type": "ai-resume", "job": job, "seq": 4})
		last := b.expect(t, "ai-chunk")
		if last.num(t, "seq") != 4 || !last.boolean(t, "done") || strings.TrimSpace(last.str(t, "content")) != "epsilon" {
			t.Errorf("resume holding the last chunk: %s, want seq 4 done true again", last)
		}
		b.sendJSON(t, map[string]any{"type": "ai-resume", "job": job, "seq": 1})
		if got := trimmed(aiChunks(t, b, job, 2, "")); got != "gamma delta epsilon" {
			t.Errorf("resume after seq 1: %q", got)
		}
		if got := b.sync(t); len(got) != 0 {
			t.Errorf("after the resumes: %s", got[0])
		}
	})
}

// PROTOCOL.md, close 1008: every message counts against the rate limit,
// valid or not, and a client refused more than -rate-burst messages within
// 10 s is closed with 1008, whichever way it sends them.
func TestRateLimit(t *testing.T) {
	t.Parallel()
	n := edgehubtest.Start(t, "-rate-limit", "50", "-rate-burst", "50")

	// flood sends msg with pace between sends until the connection fails
	// or stop is closed.
	flood := func(r *rawClient, msg string, pace time.Duration, stop <-chan struct{}) <-chan int {
		sent := make(chan int, 1)
		go func() {
			f := maskedFrame(ws.OpText, true, []byte(msg))
			var batch []byte
			per := 1
			if pace == 0 { // as fast as the socket takes them
				per = 64
			}
			for range per {
				batch = append(batch, f...)
			}
			total := 0
			defer func() { sent <- total }()
			for {
				select {
				case <-stop:
					return
				default:
				}
				_ = r.conn.SetWriteDeadline(time.Now().Add(readTimeout))
				if _, err := r.conn.Write(batch); err != nil {
					return
				}
				total += per
				time.Sleep(pace)
			}
		}()
		return sent
	}

	t.Run("garbage-flood", func(t *testing.T) {
		t.Parallel()
		r := upgraded(t, n)
		stop := make(chan struct{})
		sent := flood(r, "garbage, not JSON", 0, stop)
		reason := r.expectClose(t, 1008)
		close(stop)
		t.Logf("closed with 1008 %q; the client had written %d garbage messages", reason, <-sent)
	})

	t.Run("steady-4x", func(t *testing.T) {
		t.Parallel()
		// 200/s against 50/s: a refill lets one through every 20 ms, so
		// refusals never come 100 in a row, but 150 a second are refused.
		r := upgraded(t, n)
		stop := make(chan struct{})
		sent := flood(r, `{"type":"ping"}`, 5*time.Millisecond, stop)
		reason := r.expectClose(t, 1008)
		close(stop)
		t.Logf("closed with 1008 %q after %d pings at 200/s", reason, <-sent)
	})

	t.Run("within-the-limit", func(t *testing.T) {
		t.Parallel()
		// A burst of 50, then 20/s: every message is answered.
		c := dial(t, n)
		for i := range 50 {
			c.send(t, fmt.Sprintf(`{"type":"ping","id":%d}`, i))
		}
		for i := range 50 {
			if p := c.expect(t, "pong"); string(p.field("id")) != fmt.Sprint(i) {
				t.Fatalf("pong %s, want id %d", p, i)
			}
		}
		for i := range 30 {
			time.Sleep(50 * time.Millisecond)
			c.send(t, `{"type":"ping"}`)
			if m := c.next(t); m.Type != "pong" {
				t.Fatalf("message %d at 20/s: %s, want pong", i, m)
			}
		}
	})

	t.Run("refused-answered-rate_limited", func(t *testing.T) {
		t.Parallel()
		// 60 at once: 50 pass, 10 are refused (not more than the burst:
		// the connection stays).
		c := dial(t, n)
		for range 60 {
			c.send(t, `{"type":"ping"}`)
		}
		pongs, limited := 0, 0
		for range 60 {
			m := c.next(t)
			switch {
			case m.Type == "pong":
				pongs++
			case m.Type == "error" && m.str(t, "code") == "rate_limited":
				limited++
			default:
				t.Fatalf("unexpected %s", m)
			}
		}
		if limited == 0 || pongs < 50 {
			t.Errorf("60 at once against a burst of 50: %d pongs, %d rate_limited", pongs, limited)
		}
	})
}
