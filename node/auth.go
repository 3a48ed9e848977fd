package node

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"

	"github.com/golang-jwt/jwt/v5"
)

// claims are the JWT claims of a client token.
type claims struct {
	jwt.RegisteredClaims
	Rooms []string `json:"rooms"` // room patterns the user may join
	Pub   []string `json:"pub"`   // room patterns the user may publish to
	AI    bool     `json:"ai"`    // may ask the AI
}

// anonymous are the grants of every connection of a node without auth.
var anonymous = grants{all: true}

// grants is what a connection may do.
type grants struct {
	all   bool // -insecure: anything
	rooms []string
	pub   []string
	ai    bool
	jti   string // the token's id, for revocation; empty without one
}

func (g *grants) canJoin(room string) bool    { return g.all || matchAny(g.rooms, room) }
func (g *grants) canPublish(room string) bool { return g.all || matchAny(g.pub, room) }
func (g *grants) canAsk() bool                { return g.all || g.ai }

// matchAny reports whether room matches one of patterns: a pattern is a
// room name, or a prefix followed by "*" ("*" alone matches every room).
func matchAny(patterns []string, room string) bool {
	for _, p := range patterns {
		if prefix, ok := strings.CutSuffix(p, "*"); ok {
			if strings.HasPrefix(room, prefix) {
				return true
			}
		} else if p == room {
			return true
		}
	}
	return false
}

var errNoToken = errors.New("no token: pass ?token= or Authorization: Bearer")

// verifier checks client tokens.
type verifier struct {
	key    []byte
	parser *jwt.Parser
}

// newVerifier checks HS256 tokens signed with secret. Tokens must carry
// exp unless allowNoExp: a token without one would be valid forever, and
// a leaked one could never be retired short of changing the secret.
func newVerifier(secret string, allowNoExp bool) *verifier {
	// HS256 only: a token may not choose its own algorithm.
	opts := []jwt.ParserOption{jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()})}
	if !allowNoExp {
		opts = append(opts, jwt.WithExpirationRequired())
	}
	return &verifier{key: []byte(secret), parser: jwt.NewParser(opts...)}
}

// verify returns the user id and grants of a valid token.
func (v *verifier) verify(token string) (sub string, g grants, err error) {
	if token == "" {
		return "", g, errNoToken
	}
	var c claims
	_, err = v.parser.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return v.key, nil })
	if err != nil {
		return "", g, fmt.Errorf("invalid token: %w", err)
	}
	if c.Subject == "" {
		return "", g, errors.New("invalid token: no sub claim")
	}
	return c.Subject, grants{rooms: c.Rooms, pub: c.Pub, ai: c.AI, jti: c.ID}, nil
}

// bearer returns the token of an "Authorization: Bearer <token>" value.
func bearer(header string) string {
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}

// keyMatches compares an API key in constant time.
func keyMatches(got, want string) bool {
	return subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}
