package frame

import (
	"unicode/utf8"

	"github.com/gobwas/ws"
	"github.com/valyala/bytebufferpool"
)

// DefaultMaxMessage is the limit on a data message's payload of a Parser whose
// MaxMessage is zero.
const DefaultMaxMessage = 65536

// Handler receives each complete data message and each control frame.
//
// op is ws.OpText or ws.OpBinary for a complete (possibly reassembled)
// message, or ws.OpPing, ws.OpPong or ws.OpClose for a control frame.
//
// payload is unmasked and valid only during the call: it may point into the
// caller's read buffer or into a pooled buffer. For ws.OpText it is valid
// UTF-8. For ws.OpClose it has been checked (ErrBadCloseFrame,
// ErrInvalidUTF8); ParseClose decodes it.
//
// Returning an error stops Feed, which returns that error. OnFrame must not
// call Feed or Release on the Parser that calls it.
type Handler interface {
	OnFrame(op ws.OpCode, payload []byte) error
}

// Parser is the incremental parser of one connection's client to server
// frames. The zero value is ready to use, with MaxMessage DefaultMaxMessage.
//
// A Parser must be used by one goroutine at a time.
type Parser struct {
	// MaxMessage is the limit on a data message's payload, summed over its
	// fragments. Zero (or less) means DefaultMaxMessage. A frame that would
	// take a message over it fails with ErrTooLarge as soon as its length
	// is read. (An int32, as are the small fields below, so that they pack
	// with hdr: a Parser is part of every connection.)
	MaxMessage int32

	// hdr holds the start of a header that the last Feed ended in, nhdr
	// bytes of it.
	hdr  [ws.MaxHeaderSize]byte
	nhdr uint8

	// inFrame: the payload of frame is being received; got is how many
	// payload bytes arrived so far.
	inFrame bool

	// op is the opcode of the message in msg once its first fragment is
	// complete; zero (ws.OpContinuation) when no message is in progress.
	op ws.OpCode

	frame ws.Header
	got   int

	// stash holds the payload received so far of a frame that is not a
	// fragment (a control frame or a whole message). It is nil between
	// frames, so that an idle connection holds no buffer.
	stash *bytebufferpool.ByteBuffer

	// msg holds the fragmented message being received: the payload of its
	// fragments, unmasked, including the one being received. It is nil
	// between messages.
	msg *bytebufferpool.ByteBuffer

	// valid is how many bytes at the start of the text being received are
	// known to be complete, valid UTF-8 runes: of msg if op is ws.OpText or
	// the frame being received starts a text message, of stash if that frame
	// is a whole text message.
	valid int
}

// Feed parses data, bytes just read from the connection, calling h for every
// complete message and control frame in order.
//
// Feed unmasks data in place. A frame that lies whole in data is delivered
// from data; the trailing partial frame, if any, is copied into a pooled
// buffer and completed by later Feeds.
//
// Feed returns the first protocol violation (a *CloseError) or handler error.
// The Parser must not be fed again after an error: Release it.
func (p *Parser) Feed(data []byte, h Handler) error {
	if p.inFrame {
		n, err := p.fill(data)
		if err != nil {
			return err
		}
		data = data[n:]
		if p.got < int(p.frame.Length) {
			return nil
		}
		err = p.finish(h)
		if err != nil {
			return err
		}
	}
	for len(data) > 0 {
		hdr, n, ok, err := p.nextHeader(data)
		if err != nil {
			return err
		}
		data = data[n:]
		if !ok {
			// Feed ended inside the header, which nextHeader kept.
			return nil
		}
		size := int(hdr.Length)
		if size > len(data) {
			p.begin(hdr)
			_, err = p.fill(data)
			return err
		}
		// The whole frame is here: deliver it without copying. The capacity
		// is cut so that a handler appending to payload cannot overwrite
		// the next frame.
		payload := data[:size:size]
		data = data[size:]
		ws.Cipher(payload, hdr.Mask, 0)
		err = p.deliver(hdr, payload, h)
		if err != nil {
			return err
		}
	}
	return nil
}

// Buffered reports how many bytes the Parser holds: the partial frame and the
// fragmented message in progress.
func (p *Parser) Buffered() int {
	n := int(p.nhdr)
	if p.stash != nil {
		n += p.stash.Len()
	}
	if p.msg != nil {
		n += p.msg.Len()
	}
	return n
}

// Release returns the Parser's buffers to their pools and resets it: it may
// then be used for a new connection. MaxMessage is kept.
func (p *Parser) Release() {
	release(&stashPool, p.stash)
	release(&messagePool, p.msg)
	*p = Parser{MaxMessage: p.MaxMessage}
}

// nextHeader reads the header of the next frame from data, completing the
// one the previous Feed ended in if any. It returns how many bytes of data it
// consumed and ok if the header is complete; if not, it consumed all of data
// and keeps it for the next call.
func (p *Parser) nextHeader(data []byte) (h ws.Header, n int, ok bool, err error) {
	if p.nhdr == 0 {
		h, n, err = p.readHeader(data)
		if err != nil || n > 0 {
			return h, n, err == nil, err
		}
		// A header is at most 14 bytes, so this is all of data.
		p.nhdr = uint8(copy(p.hdr[:], data))
		return h, int(p.nhdr), false, nil
	}

	had := int(p.nhdr)
	k := copy(p.hdr[had:], data)
	h, n, err = p.readHeader(p.hdr[:had+k])
	if err != nil {
		return h, 0, false, err
	}
	if n == 0 {
		// Still short, which means that data had fewer than the
		// 14-had bytes copied.
		p.nhdr += uint8(k)
		return h, k, false, nil
	}
	p.nhdr = 0
	return h, n - had, true, nil
}

// isFragment reports whether a data frame with header h is part of a
// fragmented message, whose payload goes to msg.
func isFragment(h ws.Header) bool {
	return !h.Fin || h.OpCode == ws.OpContinuation
}

// begin starts receiving the payload of the frame with header h, which does
// not lie whole in the data at hand.
func (p *Parser) begin(h ws.Header) {
	p.frame = h
	p.inFrame = true
	p.got = 0
	switch {
	case h.OpCode.IsControl() || !isFragment(h):
		p.stash = stashPool.Get()
	case p.msg == nil:
		p.msg = messagePool.Get()
	}
}

// fill appends as much of data as the current frame's payload still needs to
// its buffer, unmasked, and returns how many bytes it took.
//
// The buffer grows as bytes arrive: the length the peer declared is never
// allocated upfront.
//
// Text is checked as it arrives, so that a big frame fails at its first bad
// rune rather than once it is whole (RFC 6455 §8.1 lets an endpoint fail as
// soon as it sees invalid UTF-8).
func (p *Parser) fill(data []byte) (int, error) {
	n := min(len(data), int(p.frame.Length)-p.got)
	b := p.stash
	if b == nil {
		b = p.msg
	}
	start := len(b.B)
	b.B = append(b.B, data[:n]...)
	ws.Cipher(b.B[start:], p.frame.Mask, p.got)
	p.got += n
	if p.receivingText() {
		k, ok := validPrefix(b.B[p.valid:])
		if !ok {
			return n, ErrInvalidUTF8
		}
		p.valid += k
	}
	return n, nil
}

// receivingText reports whether the frame being received carries text.
func (p *Parser) receivingText() bool {
	switch p.frame.OpCode {
	case ws.OpText:
		return true
	case ws.OpContinuation:
		return p.op == ws.OpText
	}
	return false
}

// finish delivers the frame whose payload fill has completed.
func (p *Parser) finish(h Handler) error {
	p.inFrame = false
	if p.stash == nil {
		return p.fragment(p.frame, h)
	}
	err := p.deliver(p.frame, p.stash.B, h)
	p.stash = release(&stashPool, p.stash)
	return err
}

// deliver handles a complete, unmasked frame that is not already in msg.
func (p *Parser) deliver(hdr ws.Header, payload []byte, h Handler) error {
	switch {
	case hdr.OpCode.IsControl():
		if hdr.OpCode == ws.OpClose {
			err := checkClose(payload)
			if err != nil {
				return err
			}
		}
	case isFragment(hdr):
		if p.msg == nil {
			p.msg = messagePool.Get()
		}
		p.msg.B = append(p.msg.B, payload...)
		return p.fragment(hdr, h)
	case hdr.OpCode == ws.OpText:
		// Any start of payload that fill has checked already is skipped.
		rest := payload[p.valid:]
		p.valid = 0
		if !utf8.Valid(rest) {
			return ErrInvalidUTF8
		}
	}
	return h.OnFrame(hdr.OpCode, payload)
}

// fragment handles a complete fragment with header hdr, whose payload is
// already at the end of msg, and delivers the message if it was the last.
func (p *Parser) fragment(hdr ws.Header, h Handler) error {
	if hdr.OpCode != ws.OpContinuation {
		p.op = hdr.OpCode
	}
	if p.op == ws.OpText {
		rest := p.msg.B[p.valid:]
		if hdr.Fin {
			if !utf8.Valid(rest) {
				return ErrInvalidUTF8
			}
		} else {
			// Fail now rather than after buffering the rest of the
			// message, but let a rune continue in the next fragment.
			n, ok := validPrefix(rest)
			if !ok {
				return ErrInvalidUTF8
			}
			p.valid += n
		}
	}
	if !hdr.Fin {
		return nil
	}
	op := p.op
	p.op = 0
	p.valid = 0
	err := h.OnFrame(op, p.msg.B)
	p.msg = release(&messagePool, p.msg)
	return err
}
