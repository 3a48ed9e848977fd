package frame

import (
	"encoding/binary"
	"slices"

	"github.com/gobwas/ws"
)

// HeaderLen returns the size of the header of an unmasked frame (server to
// client) with a payload of payloadLen bytes: 2, 4 or 10.
func HeaderLen(payloadLen int) int {
	switch {
	case payloadLen < len16Mark:
		return 2
	case payloadLen <= 0xffff:
		return 4
	default:
		return 10
	}
}

// AppendFrame appends to dst an unmasked final frame (server to client) with
// opcode op and payload, and returns the extended slice. It allocates only if
// dst lacks the capacity, and then once.
func AppendFrame(dst []byte, op ws.OpCode, payload []byte) []byte {
	n := len(payload)
	dst = slices.Grow(dst, HeaderLen(n)+n)
	dst = appendHeader(dst, finBit|byte(op)&opBits, 0, n)
	return append(dst, payload...)
}

// New returns an unmasked final frame with opcode op and payload in one
// allocation of the exact size. This is the frame that a broadcast encodes
// once and writes to every member: it must then be treated as read-only.
func New(op ws.OpCode, payload []byte) []byte {
	n := len(payload)
	return AppendFrame(make([]byte, 0, HeaderLen(n)+n), op, payload)
}

// AppendMasked appends to dst a masked frame (client to server) with opcode
// op, the FIN bit set if fin, and payload masked with mask, and returns the
// extended slice. payload is not modified. It is meant for tests and load
// generators; a real client should draw a fresh mask for every frame
// (ws.NewMask).
func AppendMasked(dst []byte, op ws.OpCode, fin bool, payload []byte, mask [4]byte) []byte {
	n := len(payload)
	dst = slices.Grow(dst, HeaderLen(n)+len(mask)+n)
	b0 := byte(op) & opBits
	if fin {
		b0 |= finBit
	}
	dst = appendHeader(dst, b0, maskBit, n)
	dst = append(dst, mask[:]...)
	start := len(dst)
	dst = append(dst, payload...)
	ws.Cipher(dst[start:], mask, 0)
	return dst
}

// appendHeader appends the first two header bytes, b0 and the mask bit
// (maskBit or 0) with the length, then the extended length if any. The mask
// key, if any, is left to the caller.
func appendHeader(dst []byte, b0, mask byte, n int) []byte {
	switch {
	case n < len16Mark:
		return append(dst, b0, mask|byte(n))
	case n <= 0xffff:
		dst = append(dst, b0, mask|len16Mark)
		return binary.BigEndian.AppendUint16(dst, uint16(n))
	default:
		dst = append(dst, b0, mask|len64Mark)
		return binary.BigEndian.AppendUint64(dst, uint64(n))
	}
}
