package frame

import (
	"encoding/binary"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// checkClose checks the payload of a close frame received from the peer.
// See https://tools.ietf.org/html/rfc6455#section-5.5.1
func checkClose(payload []byte) error {
	switch len(payload) {
	case 0:
		return nil
	case 1:
		// A code is two bytes: one byte is a truncated code.
		return ErrBadCloseFrame
	}
	code := ws.StatusCode(binary.BigEndian.Uint16(payload))
	if !wireCode(code) {
		return ErrBadCloseFrame
	}
	if !utf8.Valid(payload[2:]) {
		return ErrInvalidUTF8
	}
	return nil
}

// wireCode reports whether code may be sent in a close frame.
//
// ws.CheckCloseFrameData does not fit: it accepts codes 5000 and above, which
// RFC 6455 §7.4.2 leaves undefined, and refuses 1012-1014, which IANA has
// since registered in the WebSocket Close Code Number Registry that §11.7
// sets up (service restart, try again later, bad gateway).
func wireCode(code ws.StatusCode) bool {
	switch {
	case code >= 1000 && code <= 1003:
		return true
	case code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		// Registered by libraries and frameworks (3000-3999) or private
		// use (4000-4999).
		return true
	default:
		// Below 1000: unused. 1004: reserved. 1005, 1006, 1015: must not
		// be sent. 1016-2999: unassigned. 5000 and up: undefined.
		return false
	}
}

// ParseClose decodes a close payload that Feed has checked. A payload with no
// code (shorter than two bytes) gives ws.StatusNoStatusRcvd (1005) and "",
// as RFC 6455 §7.1.5 says. The reason is a copy of the payload's bytes.
func ParseClose(payload []byte) (code ws.StatusCode, reason string) {
	if len(payload) < 2 {
		return ws.StatusNoStatusRcvd, ""
	}
	return ws.StatusCode(binary.BigEndian.Uint16(payload)), string(payload[2:])
}

// NewClose returns a close frame with code and reason. Code zero gives a frame
// with an empty payload (and no reason).
//
// A reason longer than the 123 bytes that a control frame leaves for it is
// cut at a rune boundary, so that it stays valid UTF-8 and the peer does not
// fail the connection over the close frame itself.
//
// code must be one that may be sent on the wire: NewClose does not check it.
func NewClose(code ws.StatusCode, reason string) []byte {
	if code == 0 {
		return New(ws.OpClose, nil)
	}
	reason = truncate(reason, ws.MaxControlFramePayloadSize-2)
	n := 2 + len(reason)
	b := make([]byte, 0, HeaderLen(n)+n)
	b = appendHeader(b, finBit|byte(ws.OpClose), 0, n)
	b = binary.BigEndian.AppendUint16(b, uint16(code))
	return append(b, reason...)
}

// truncate cuts s to at most n bytes without splitting a rune.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
