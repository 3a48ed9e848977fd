package node

import (
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestMatchAny(t *testing.T) {
	t.Parallel()
	tcs := []struct {
		patterns []string
		room     string
		want     bool
	}{
		{[]string{"lobby"}, "lobby", true},
		{[]string{"lobby"}, "lobby2", false},
		{[]string{"chat-*"}, "chat-1", true},
		{[]string{"chat-*"}, "chat-", true},
		{[]string{"chat-*"}, "chat", false},
		{[]string{"*"}, "anything", true},
		{nil, "lobby", false},
		{[]string{"a", "b-*"}, "b-x", true},
	}
	for _, tc := range tcs {
		if got := matchAny(tc.patterns, tc.room); got != tc.want {
			t.Fatalf("matchAny(%q, %q) = %v, want %v", tc.patterns, tc.room, got, tc.want)
		}
	}
}

func sign(t *testing.T, method jwt.SigningMethod, key any, c jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, c).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestVerify(t *testing.T) {
	t.Parallel()
	v := newVerifier("s3cret", false)
	future := time.Now().Add(time.Hour).Unix()
	good := jwt.MapClaims{"sub": "alice", "exp": future, "rooms": []string{"chat-*"}, "pub": []string{"chat-1"}, "ai": true}
	sub, g, err := v.verify(sign(t, jwt.SigningMethodHS256, []byte("s3cret"), good))
	if err != nil || sub != "alice" || !g.canJoin("chat-9") || g.canJoin("other") || !g.canPublish("chat-1") || g.canPublish("chat-2") || !g.canAsk() {
		t.Fatalf("good token: sub=%q grants=%+v err=%v", sub, g, err)
	}
	bad := map[string]string{
		"empty":        "",
		"garbage":      "not.a.token",
		"wrong key":    sign(t, jwt.SigningMethodHS256, []byte("other"), good),
		"expired":      sign(t, jwt.SigningMethodHS256, []byte("s3cret"), jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(-time.Minute).Unix()}),
		"no sub":       sign(t, jwt.SigningMethodHS256, []byte("s3cret"), jwt.MapClaims{"exp": future}),
		"no exp":       sign(t, jwt.SigningMethodHS256, []byte("s3cret"), jwt.MapClaims{"sub": "alice"}),
		"HS512":        sign(t, jwt.SigningMethodHS512, []byte("s3cret"), good),
		"alg none":     sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, good),
		"not yet good": sign(t, jwt.SigningMethodHS256, []byte("s3cret"), jwt.MapClaims{"sub": "a", "exp": future, "nbf": future}),
	}
	for name, token := range bad {
		if _, _, err := v.verify(token); err == nil {
			t.Fatalf("%s: accepted", name)
		}
	}
}

// -allow-no-exp accepts a token without exp, and still refuses an expired
// one.
func TestVerifyAllowNoExp(t *testing.T) {
	t.Parallel()
	v := newVerifier("s3cret", true)
	if sub, _, err := v.verify(sign(t, jwt.SigningMethodHS256, []byte("s3cret"), jwt.MapClaims{"sub": "bob"})); err != nil || sub != "bob" {
		t.Fatalf("no exp with allowNoExp: %q, %v", sub, err)
	}
	expired := sign(t, jwt.SigningMethodHS256, []byte("s3cret"), jwt.MapClaims{"sub": "bob", "exp": time.Now().Add(-time.Minute).Unix()})
	if _, _, err := v.verify(expired); err == nil {
		t.Fatal("expired token accepted with allowNoExp")
	}
}

func TestBearer(t *testing.T) {
	t.Parallel()
	for header, want := range map[string]string{"Bearer abc": "abc", "bearer  abc ": "abc", "Basic abc": "", "abc": "", "": ""} {
		if got := bearer(header); got != want {
			t.Fatalf("bearer(%q) = %q, want %q", header, got, want)
		}
	}
}
