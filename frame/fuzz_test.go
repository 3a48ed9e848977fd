package frame

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// fuzzChunks turns the fuzzer's cut bytes into chunk sizes: each byte is a
// chunk of 1 to 256 bytes, the last one repeating; no cuts feed byte by byte.
func fuzzChunks(cuts []byte) []int {
	if len(cuts) == 0 {
		return []int{1}
	}
	sizes := make([]int, len(cuts))
	for i, c := range cuts {
		sizes[i] = int(c) + 1
	}
	return sizes
}

func fuzzSeeds() [][]byte {
	return [][]byte{
		splitStream(),
		masked(ws.OpText, true, ""),
		masked(ws.OpText, true, "héllo"),
		masked(ws.OpBinary, true, strings.Repeat("b", 200)),
		concat(
			masked(ws.OpText, false, "a\xe2"),
			masked(ws.OpPing, true, "p"),
			masked(ws.OpContinuation, true, "\x82\xac"),
		),
		masked(ws.OpClose, true, closePayload(1000, "bye")),
		masked(ws.OpClose, true, "\x03"),
		AppendFrame(nil, ws.OpText, []byte("unmasked")),
		masked(ws.OpContinuation, true, "x"),
		masked(ws.OpPing, false, ""),
		masked(ws.OpText, false, "\xff"),
		[]byte{0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0},
	}
}

// FuzzParser feeds a stream whole and in chunks whose sizes the fuzzer picks
// (as nats-server's FuzzParser does), and checks that both give the same
// messages and error, the same as a plain reference decoder.
func FuzzParser(f *testing.F) {
	for i, s := range fuzzSeeds() {
		f.Add(s, []byte{}, uint16(0))
		f.Add(s, []byte{byte(i), 3, 0, 13}, uint16(0))
		f.Add(s, []byte{5}, uint16(10))
	}
	f.Fuzz(func(t *testing.T, stream, cuts []byte, limit uint16) {
		max := int(limit)
		whole, wholeErr := feedChunks(t, stream, max)
		chunked, chunkedErr := feedChunks(t, stream, max, fuzzChunks(cuts)...)
		if wholeErr != chunkedErr || !equalEvents(whole, chunked) {
			t.Fatalf(
				"whole: %s, %v\nchunked: %s, %v",
				eventsString(whole), wholeErr, eventsString(chunked), chunkedErr,
			)
		}
		checkEvents(t, whole, max)

		ref, truncated, refErr := reference(stream, max)
		if !equalEvents(whole, ref) {
			t.Fatalf(
				"parser: %s, %v\nreference: %s, %v (truncated %v)",
				eventsString(whole), wholeErr, eventsString(ref), refErr, truncated,
			)
		}
		// A truncated frame is refused early by the parser if its header
		// is already bad; the reference waits for the whole frame.
		if wholeErr != refErr && !(truncated && refErr == nil) {
			t.Fatalf(
				"parser error: %v\nreference error: %v",
				wholeErr, refErr,
			)
		}
	})
}

// checkEvents checks what the Handler contract promises.
func checkEvents(t *testing.T, evs []event, max int) {
	if max == 0 {
		max = DefaultMaxMessage
	}
	for _, e := range evs {
		switch e.op {
		case ws.OpText:
			if !utf8.ValidString(e.payload) {
				t.Fatalf(
					"text not UTF-8: %s",
					e,
				)
			}
			fallthrough
		case ws.OpBinary:
			if len(e.payload) > max {
				t.Fatalf(
					"message of %d bytes over %d",
					len(e.payload), max,
				)
			}
		case ws.OpPing, ws.OpPong, ws.OpClose:
			if len(e.payload) > 125 {
				t.Fatalf(
					"control frame of %d bytes",
					len(e.payload),
				)
			}
		default:
			t.Fatalf(
				"bad opcode in %s",
				e,
			)
		}
	}
}

// reference decodes a stream the plain way, with the whole stream at hand.
// It shares no code with Parser. truncated is set if the stream ends inside
// a frame.
func reference(stream []byte, max int) (evs []event, truncated bool, err error) {
	if max <= 0 {
		max = DefaultMaxMessage
	}
	var (
		msg []byte
		op  ws.OpCode // of the message in msg; 0 if none
	)
	for len(stream) > 0 {
		if len(stream) < 2 {
			return evs, true, nil
		}
		fin := stream[0]&0x80 != 0
		rsv := stream[0] & 0x70
		code := ws.OpCode(stream[0] & 0xf)
		mask := stream[1]&0x80 != 0
		len7 := uint64(stream[1] & 0x7f)
		control := code >= 8
		switch {
		case code >= 3 && code <= 7 || code >= 0xb:
			return evs, false, ErrBadOpcode
		case control && len7 > 125:
			return evs, false, ErrControlTooLong
		case control && !fin:
			return evs, false, ErrControlFragmented
		case rsv != 0:
			return evs, false, ErrReservedBits
		case !mask:
			return evs, false, ErrUnmasked
		case !control && op != 0 && code != 0:
			return evs, false, ErrExpectedContinuation
		case !control && op == 0 && code == 0:
			return evs, false, ErrUnexpectedContinuation
		}
		n := 2
		length := len7
		switch len7 {
		case 126:
			n = 4
			if len(stream) < n {
				return evs, true, nil
			}
			length = uint64(stream[2])<<8 | uint64(stream[3])
		case 127:
			n = 10
			if len(stream) < n {
				return evs, true, nil
			}
			length = 0
			for _, b := range stream[2:10] {
				length = length<<8 | uint64(b)
			}
		}
		if !control && length+uint64(len(msg)) > uint64(max) {
			return evs, false, ErrTooLarge
		}
		if uint64(len(stream)) < uint64(n)+4+length {
			// Text is checked as it arrives.
			text := code == ws.OpText || code == 0 && op == ws.OpText
			if text && len(stream) > n+4 {
				key := stream[n : n+4]
				part := bytes.Clone(stream[n+4:])
				for i := range part {
					part[i] ^= key[i%4]
				}
				if _, ok := completable(append(msg, part...)); !ok {
					return evs, false, ErrInvalidUTF8
				}
			}
			return evs, true, nil
		}
		key := stream[n : n+4]
		payload := bytes.Clone(stream[n+4 : n+4+int(length)])
		stream = stream[n+4+int(length):]
		for i := range payload {
			payload[i] ^= key[i%4]
		}

		switch {
		case control:
			if code == ws.OpClose && len(payload) > 0 {
				if len(payload) == 1 {
					return evs, false, ErrBadCloseFrame
				}
				c := binary.BigEndian.Uint16(payload)
				ok := false
				for _, good := range [][2]uint16{{1000, 1003}, {1007, 1014}, {3000, 4999}} {
					ok = ok || c >= good[0] && c <= good[1]
				}
				if !ok {
					return evs, false, ErrBadCloseFrame
				}
				if !utf8.Valid(payload[2:]) {
					return evs, false, ErrInvalidUTF8
				}
			}
			evs = append(evs, event{
				op:      code,
				payload: string(payload),
			})
			continue
		case code != 0:
			op = code
		}
		msg = append(msg, payload...)
		if op == ws.OpText {
			if fin && !utf8.Valid(msg) {
				return evs, false, ErrInvalidUTF8
			}
			if _, ok := completable(msg); !fin && !ok {
				return evs, false, ErrInvalidUTF8
			}
		}
		if fin {
			evs = append(evs, event{
				op:      op,
				payload: string(msg),
			})
			msg, op = nil, 0
		}
	}
	return evs, false, nil
}

// FuzzUTF8Fragments sends text cut into fragments where the fuzzer says and
// checks that it is accepted if and only if it is valid UTF-8, and that
// invalid text fails at the first fragment that no continuation can save.
func FuzzUTF8Fragments(f *testing.F) {
	f.Add([]byte("a€𝄞b"), []byte{1, 1, 1, 1})
	f.Add([]byte("a\xe2\x82"), []byte{2})
	f.Add([]byte("\xed\xa0\x80"), []byte{1})
	f.Add([]byte("ok\xc0\xafok"), []byte{3, 0})
	f.Fuzz(func(t *testing.T, text, cuts []byte) {
		var frags [][]byte
		rest := text
		for _, c := range cuts {
			n := min(int(c), len(rest))
			frags = append(frags, rest[:n])
			rest = rest[n:]
		}
		frags = append(frags, rest)

		// The first fragment after which the text cannot become valid.
		failAt := -1
		for i := range frags {
			end := len(bytes.Join(frags[:i+1], nil))
			last := i == len(frags)-1
			if last && !utf8.Valid(text[:end]) {
				failAt = i
				break
			}
			if _, ok := completable(text[:end]); !ok {
				failAt = i
				break
			}
		}

		var p Parser
		defer p.Release()
		var r recorder
		for i, frag := range frags {
			op := ws.OpContinuation
			if i == 0 {
				op = ws.OpText
			}
			fr := AppendMasked(nil, op, i == len(frags)-1, frag, testMask)
			err := p.Feed(fr, &r)
			if (err != nil) != (i == failAt) || (err != nil && err != ErrInvalidUTF8) {
				t.Fatalf(
					"fragment %d of %q: Feed() error = %v; want an error at fragment %d",
					i, frags, err, failAt,
				)
			}
			if err != nil {
				return
			}
		}
		if len(r.events) != 1 || r.events[0].payload != string(text) {
			t.Fatalf(
				"got %s; want %q",
				eventsString(r.events), text,
			)
		}
	})
}
