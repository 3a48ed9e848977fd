package main

// Auth per PROTOCOL.md "Transport": HS256 JWTs with sub, exp, rooms, pub, ai.

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/edgehub/edgehub/cmd/edgehub/edgehubtest"
)

const testSecret = "e2e-secret-0123456789abcdef"

// mint signs a token for sub with the given grants, valid for ttl (a
// negative ttl gives an expired token).
func mint(t testing.TB, secret, sub string, ttl time.Duration, rooms, pub []string, ai bool) string {
	t.Helper()
	claims := jwt.MapClaims{
		"sub":   sub,
		"exp":   time.Now().Add(ttl).Unix(),
		"rooms": rooms,
		"pub":   pub,
		"ai":    ai,
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// mintNoExp signs a token for sub without an exp claim.
func mintNoExp(t testing.TB, secret, sub string) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": sub, "rooms": []string{"*"}}).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// dialToken connects with ?token=tok.
func dialToken(t testing.TB, n *edgehubtest.Node, tok string) *wsClient {
	t.Helper()
	c, err := dialWS(t, n, "token="+url.QueryEscape(tok), nil)
	if err != nil {
		t.Fatalf("dial with a valid token: %v", err)
	}
	return c
}

func TestAuth(t *testing.T) {
	t.Parallel()
	n := edgehubtest.Start(t, "-secret", testSecret, "-echo-delay", "100ms")
	rooms, pub := []string{"lobby", "chat-*"}, []string{"chat-*"}

	t.Run("refused-upgrades", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct{ name, query, auth string }{
			{"no-token", "", ""},
			{"garbage", "token=not.a.jwt", ""},
			{"bad-signature", "token=" + mint(t, "another-secret", "mallory", time.Hour, rooms, pub, true), ""},
			{"expired", "token=" + mint(t, testSecret, "old", -time.Minute, rooms, pub, true), ""},
			{"expired-header", "", "Bearer " + mint(t, testSecret, "old", -time.Minute, rooms, pub, true)},
			{"bad-header", "", "Bearer " + mint(t, "another-secret", "mallory", time.Hour, rooms, pub, true)},
			// exp is required unless the node runs with -allow-no-exp.
			{"no-exp", "token=" + mintNoExp(t, testSecret, "forever"), ""},
		} {
			r := rawDial(t, n.Addr)
			path := "/ws"
			if tc.query != "" {
				path += "?" + tc.query
			}
			req := strings.Replace(handshakeRequest(n.Addr, "Authorization", tc.auth), "GET /ws ", "GET "+path+" ", 1)
			r.write(t, []byte(req))
			resp, body := r.response(t)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("%s: upgrade status %d, want 401: %s", tc.name, resp.StatusCode, body)
				continue
			}
			r.expectEOF(t, readTimeout) // "no socket is kept"
		}
	})

	t.Run("grants", func(t *testing.T) {
		t.Parallel()
		tok := mint(t, testSecret, "user-17", time.Hour, rooms, pub, false)
		viaQuery := dialToken(t, n, tok)
		viaHeader, err := dialWS(t, n, "", http.Header{"Authorization": {"Bearer " + tok}})
		if err != nil {
			t.Fatalf("dial with Authorization: Bearer: %v", err)
		}
		chat := uniqueRoom("chat")
		viaHeader.join(t, chat)
		viaQuery.join(t, "lobby")
		viaQuery.join(t, chat) // matches chat-*

		for _, room := range []string{"secret", "chat", "chatroom", "lobby2", "xchat-1"} {
			viaQuery.sendJSON(t, map[string]any{"type": "join", "room": room})
			viaQuery.expectError(t, "forbidden")
		}
		viaQuery.sendJSON(t, map[string]any{"type": "publish", "room": "lobby", "data": 1})
		viaQuery.expectError(t, "forbidden") // joinable, not publishable

		viaQuery.send(t, publishMsg(chat, "p", `{"hi":1}`))
		var msgs []*msg
		for _, m := range append(viaQuery.sync(t), viaQuery.sync(t)...) {
			if m.Type == "message" {
				msgs = append(msgs, m)
			}
		}
		if len(msgs) != 1 {
			t.Fatalf("publisher: %d own messages, want 1", len(msgs))
		}
		for _, m := range []*msg{msgs[0], viaHeader.expect(t, "message")} {
			if m.str(t, "from") != "user-17" {
				t.Errorf("from = %q, want the sub user-17: %s", m.str(t, "from"), m)
			}
		}

		viaQuery.sendJSON(t, map[string]any{"type": "ai-query", "message": "hello"})
		viaQuery.expectError(t, "forbidden") // no ai claim
	})

	t.Run("job-owner", func(t *testing.T) {
		t.Parallel()
		alice := mint(t, testSecret, "alice", time.Hour, rooms, pub, true)
		bob := mint(t, testSecret, "bob", time.Hour, rooms, pub, true)
		a1, b := dialToken(t, n, alice), dialToken(t, n, bob)

		// A room answer needs publish rights to the room.
		a1.sendJSON(t, map[string]any{"type": "ai-query", "message": "x", "room": "lobby"})
		a1.expectError(t, "forbidden")

		words := "one two three four five six seven eight"
		job := askAI(t, a1, map[string]any{"message": words})
		a1.expect(t, "ai-chunk")

		// PROTOCOL.md: with auth only the same sub may resume or cancel;
		// it does not say which error another sub gets, so forbidden and
		// not_found are both accepted.
		b.sendJSON(t, map[string]any{"type": "ai-resume", "job": job, "seq": -1})
		b.expectError(t, "forbidden", "not_found")
		b.sendJSON(t, map[string]any{"type": "ai-cancel", "job": job})
		b.expectError(t, "forbidden", "not_found")

		a2 := dialToken(t, n, alice)
		a2.sendJSON(t, map[string]any{"type": "ai-resume", "job": job, "seq": -1})
		if got := trimmed(aiChunks(t, a2, job, 0, "")); got != words {
			t.Errorf("same sub resume: %q, want %q", got, words)
		}
		// The job was not cancelled by bob: the asker's stream ends with done.
		if got := trimmed(aiChunks(t, a1, job, 1, "")); got != strings.SplitN(words, " ", 2)[1] {
			t.Errorf("asker's stream after bob's attempts: %q", got)
		}
		if got := b.sync(t); len(got) != 0 {
			t.Errorf("bob got %s", got[0])
		}
	})
}

// -allow-no-exp accepts a token without exp, and still refuses an expired
// one.
func TestAuthAllowNoExp(t *testing.T) {
	t.Parallel()
	n := edgehubtest.Start(t, "-secret", testSecret, "-allow-no-exp")
	c := dialToken(t, n, mintNoExp(t, testSecret, "forever"))
	if u := c.welcome.str(t, "user"); u != "forever" {
		t.Errorf("welcome user %q, want forever", u)
	}
	c.join(t, uniqueRoom("any"))
	_, err := dialWS(t, n, "token="+url.QueryEscape(mint(t, testSecret, "old", -time.Minute, nil, nil, false)), nil)
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("expired token with -allow-no-exp: %v, want a 401 refusal", err)
	}
}
