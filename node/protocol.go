package node

import (
	"encoding/json"
	"errors"
	"strconv"
	"sync"
	"unicode/utf8"

	"github.com/buger/jsonparser"
	"github.com/gobwas/ws"

	"github.com/edgehub/edgehub/frame"
)

// This file is the wire format of PROTOCOL.md: decoding client requests
// without allocating, and encoding server messages into frames.

// Error codes of the "error" message. PROTOCOL.md's "internal" is not
// among them: no request fails that way (an internal fault closes the
// connection with 1011).
const (
	codeBadRequest   = "bad_request"
	codeUnauthorized = "unauthorized"
	codeForbidden    = "forbidden"
	codeRateLimited  = "rate_limited"
	codeTooLarge     = "too_large"
	codeNotFound     = "not_found"
	codeUnavailable  = "unavailable"
)

// maxRoomLen bounds a room name in bytes.
const maxRoomLen = 128

// request is a decoded client message. Its byte slices point into the
// message, which is only valid while it is handled.
type request struct {
	raw  []byte // the whole message
	typ  []byte // the "type" string, unescaped
	id   []byte // the "id" value as raw JSON, echoed verbatim; nil when absent
	room []byte // the "room" string, unescaped; nil when absent
	buf  [64 + maxRoomLen]byte
}

var (
	errNotObject = errors.New("a message must be one JSON object")
	errNoType    = errors.New(`"type" must be a string`)
	errRoomType  = errors.New(`"room" must be a string`)
	errRoomName  = errors.New(`"room" must be 1 to 128 bytes with no spaces, control characters, '{', '}' or '*'`)
)

// decode parses msg into r. Only the fields every request may have are
// read here; handlers read their own fields with the get* helpers.
func decode(msg []byte, r *request) error {
	*r = request{raw: msg}
	if !json.Valid(msg) {
		return errNotObject
	}
	i := skipSpace(msg)
	if i == len(msg) || msg[i] != '{' {
		return errNotObject
	}
	typ, t, _, err := jsonparser.Get(msg, "type")
	if err != nil || t != jsonparser.String {
		return errNoType
	}
	if r.typ, err = jsonparser.Unescape(typ, r.buf[:64]); err != nil {
		return errNoType
	}
	if v, t, end, err := jsonparser.Get(msg, "id"); err == nil {
		r.id = rawToken(msg, v, t, end)
	}
	room, t, _, err := jsonparser.Get(msg, "room")
	switch {
	case errors.Is(err, jsonparser.KeyPathNotFoundError):
	case err != nil || t != jsonparser.String:
		return errRoomType
	default:
		if r.room, err = jsonparser.Unescape(room, r.buf[64:]); err != nil || !validRoom(r.room) {
			return errRoomName
		}
	}
	return nil
}

// rawToken widens a value jsonparser returned to its raw JSON token:
// strings come back without their quotes. end is the offset just past the
// token.
func rawToken(msg, v []byte, t jsonparser.ValueType, end int) []byte {
	if t == jsonparser.String {
		return msg[end-len(v)-2 : end]
	}
	return v
}

func skipSpace(b []byte) int {
	i := 0
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// validRoom: room names go into Redis keys inside a hash tag ({room}), and
// patterns use '*', so those bytes are not allowed.
func validRoom(room []byte) bool {
	if len(room) == 0 || len(room) > maxRoomLen || !utf8.Valid(room) {
		return false
	}
	for _, c := range room {
		if c <= ' ' || c == 0x7f || c == '{' || c == '}' || c == '*' {
			return false
		}
	}
	return true
}

// getString reads an optional string field; ok is false when it is present
// but not a string.
func getString(msg []byte, key string) (s string, present, ok bool) {
	v, t, _, err := jsonparser.Get(msg, key)
	if errors.Is(err, jsonparser.KeyPathNotFoundError) {
		return "", false, true
	}
	if err != nil || t != jsonparser.String {
		return "", true, false
	}
	s, err = jsonparser.ParseString(v)
	return s, true, err == nil
}

// getRaw reads an optional field as raw JSON.
func getRaw(msg []byte, key string) (raw []byte, present bool) {
	v, t, end, err := jsonparser.Get(msg, key)
	if err != nil {
		return nil, false
	}
	return rawToken(msg, v, t, end), true
}

// getInt reads an optional integer field; ok is false when it is present
// but not an integer.
func getInt(msg []byte, keys ...string) (n int64, present, ok bool) {
	v, t, _, err := jsonparser.Get(msg, keys...)
	if errors.Is(err, jsonparser.KeyPathNotFoundError) {
		return 0, false, true
	}
	if err != nil || t != jsonparser.Number {
		return 0, true, false
	}
	n, err = strconv.ParseInt(string(v), 10, 64)
	return n, true, err == nil
}

// encoder builds one server message: {"type":"...", fields...}.
type encoder struct {
	b []byte
}

func (e *encoder) begin(typ string) *encoder {
	e.b = append(e.b[:0], `{"type":"`...)
	e.b = append(e.b, typ...)
	e.b = append(e.b, '"')
	return e
}

func (e *encoder) key(k string) {
	e.b = append(e.b, ',', '"')
	e.b = append(e.b, k...)
	e.b = append(e.b, '"', ':')
}

func (e *encoder) str(k, v string) *encoder {
	e.key(k)
	e.b = appendString(e.b, v)
	return e
}

func (e *encoder) raw(k string, v []byte) *encoder {
	e.key(k)
	e.b = append(e.b, v...)
	return e
}

func (e *encoder) int(k string, v int64) *encoder {
	e.key(k)
	e.b = strconv.AppendInt(e.b, v, 10)
	return e
}

func (e *encoder) uint(k string, v uint64) *encoder {
	e.key(k)
	e.b = strconv.AppendUint(e.b, v, 10)
	return e
}

func (e *encoder) bool(k string, v bool) *encoder {
	e.key(k)
	e.b = strconv.AppendBool(e.b, v)
	return e
}

// id echoes a request id when there is one.
func (e *encoder) id(id []byte) *encoder {
	if id != nil {
		e.raw("id", id)
	}
	return e
}

// frame closes the object and returns it as a text frame of its own.
func (e *encoder) frame() []byte {
	e.b = append(e.b, '}')
	return frame.New(ws.OpText, e.b)
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD so
// the output is always valid JSON in a valid text frame.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

var encoders = sync.Pool{New: func() any { return &encoder{b: make([]byte, 0, 256)} }}

// encode builds one message with fill and returns its frame.
func encode(fill func(e *encoder)) []byte {
	e := encoders.Get().(*encoder)
	fill(e)
	f := e.frame()
	if cap(e.b) <= 64<<10 { // do not keep a huge buffer for the next small message
		encoders.Put(e)
	}
	return f
}
