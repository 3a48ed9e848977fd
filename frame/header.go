package frame

import (
	"encoding/binary"

	"github.com/gobwas/ws"
)

// Bits and fields of the first two header bytes.
// See https://tools.ietf.org/html/rfc6455#section-5.2
const (
	finBit    = 0x80
	rsvBits   = 0x70
	opBits    = 0x0f
	maskBit   = 0x80
	len7Bits  = 0x7f
	len16Mark = 126 // the 7-bit length field value announcing a 16-bit length
	len64Mark = 127 // the 7-bit length field value announcing a 64-bit length
)

// readHeader decodes and checks the header of the frame that starts b.
//
// It returns n == 0 and no error if b does not hold the whole header yet. It
// checks the header as far as the bytes in b allow, in a fixed order: the
// first two bytes, then the length, before the mask key arrives. A frame is
// thus refused as early as possible, and the result does not depend on where
// the stream was split.
func (p *Parser) readHeader(b []byte) (h ws.Header, n int, err error) {
	if len(b) < ws.MinHeaderSize {
		return h, 0, nil
	}
	h.Fin = b[0]&finBit != 0
	h.Rsv = (b[0] & rsvBits) >> 4
	h.OpCode = ws.OpCode(b[0] & opBits)
	h.Masked = b[1]&maskBit != 0
	len7 := b[1] & len7Bits
	// Until the extended length is read, 126 and 127 stand for "longer":
	// that is all the control frame check needs.
	h.Length = int64(len7)
	err = p.checkHeader(h)
	if err != nil {
		return h, 0, err
	}

	// Checked above: the frame is masked.
	n = ws.MinHeaderSize
	var length uint64
	switch len7 {
	case len16Mark:
		n += 2
		if len(b) < n {
			return h, 0, nil
		}
		length = uint64(binary.BigEndian.Uint16(b[2:]))
	case len64Mark:
		n += 8
		if len(b) < n {
			return h, 0, nil
		}
		// A set most significant bit (forbidden by RFC 6455) makes the length
		// over any limit, which fails the frame with ErrTooLarge below.
		length = binary.BigEndian.Uint64(b[2:])
	default:
		length = uint64(len7)
	}
	if h.OpCode.IsData() && length > uint64(p.room()) {
		return h, 0, ErrTooLarge
	}
	h.Length = int64(length)

	if len(b) < n+4 {
		return h, 0, nil
	}
	copy(h.Mask[:], b[n:n+4])
	return h, n + 4, nil
}

// checkHeader checks the fields of the first two header bytes against the
// state of the connection.
//
// ws.CheckHeader does the work; this maps its errors to the close errors of
// this package.
func (p *Parser) checkHeader(h ws.Header) error {
	s := ws.StateServerSide
	if p.op != 0 {
		s = s.Set(ws.StateFragmented)
	}
	err := ws.CheckHeader(h, s)
	switch err {
	case nil:
		return nil
	case ws.ErrProtocolOpCodeReserved:
		return ErrBadOpcode
	case ws.ErrProtocolControlPayloadOverflow:
		return ErrControlTooLong
	case ws.ErrProtocolControlNotFinal:
		return ErrControlFragmented
	case ws.ErrProtocolNonZeroRsv:
		return ErrReservedBits
	case ws.ErrProtocolMaskRequired:
		return ErrUnmasked
	case ws.ErrProtocolContinuationExpected:
		return ErrExpectedContinuation
	case ws.ErrProtocolContinuationUnexpected:
		return ErrUnexpectedContinuation
	default:
		// Not reached with ws v1.5.0; a check added by a later version is
		// still a protocol error.
		return &CloseError{
			Code:   ws.StatusProtocolError,
			Reason: err.Error(),
		}
	}
}

// room is how many more payload bytes the data message being received may
// have: the limit less what earlier fragments brought.
func (p *Parser) room() int {
	n := p.maxMessage()
	if p.msg != nil {
		n -= p.msg.Len()
	}
	// Negative only if MaxMessage was lowered in the middle of a message.
	return max(n, 0)
}

func (p *Parser) maxMessage() int {
	if p.MaxMessage <= 0 {
		return DefaultMaxMessage
	}
	return int(p.MaxMessage)
}
