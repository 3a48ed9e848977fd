package frame

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/gobwas/ws"
)

func closePayload(code ws.StatusCode, reason string) string {
	b := binary.BigEndian.AppendUint16(nil, uint16(code))
	return string(b) + reason
}

// withByte returns f with byte i or-ed with bits.
func withByte(f []byte, i int, bits byte) []byte {
	f = bytes.Clone(f)
	f[i] |= bits
	return f
}

func TestParserValid(t *testing.T) {
	big := func(n int) string {
		return strings.Repeat("x", n)
	}
	for _, test := range []struct {
		name   string
		stream []byte
		want   []event
	}{
		{
			name:   "empty text",
			stream: masked(ws.OpText, true, ""),
			want: []event{{
				op: ws.OpText,
			}},
		},
		{
			name:   "empty binary",
			stream: masked(ws.OpBinary, true, ""),
			want: []event{{
				op: ws.OpBinary,
			}},
		},
		{
			name:   "text",
			stream: masked(ws.OpText, true, "héllo, wörld €𝄞"),
			want: []event{{
				op:      ws.OpText,
				payload: "héllo, wörld €𝄞",
			}},
		},
		{
			name:   "125 bytes, 7-bit length",
			stream: masked(ws.OpBinary, true, big(125)),
			want: []event{{
				op:      ws.OpBinary,
				payload: big(125),
			}},
		},
		{
			name:   "126 bytes, 16-bit length",
			stream: masked(ws.OpBinary, true, big(126)),
			want: []event{{
				op:      ws.OpBinary,
				payload: big(126),
			}},
		},
		{
			name:   "65535 bytes, 16-bit length",
			stream: masked(ws.OpBinary, true, big(65535)),
			want: []event{{
				op:      ws.OpBinary,
				payload: big(65535),
			}},
		},
		{
			name:   "65536 bytes, 64-bit length, at the limit",
			stream: masked(ws.OpText, true, big(65536)),
			want: []event{{
				op:      ws.OpText,
				payload: big(65536),
			}},
		},
		{
			name: "65536 bytes in fragments, at the limit",
			stream: concat(
				masked(ws.OpBinary, false, big(65000)),
				masked(ws.OpContinuation, false, big(500)),
				masked(ws.OpContinuation, true, big(36)),
			),
			want: []event{{
				op:      ws.OpBinary,
				payload: big(65536),
			}},
		},
		{
			name: "fragmented text with ping in the middle",
			stream: concat(
				masked(ws.OpText, false, "Hel"),
				masked(ws.OpPing, true, "are you there"),
				masked(ws.OpContinuation, false, "lo "),
				masked(ws.OpPong, true, ""),
				masked(ws.OpContinuation, true, "world"),
			),
			want: []event{
				{
					op:      ws.OpPing,
					payload: "are you there",
				},
				{
					op: ws.OpPong,
				},
				{
					op:      ws.OpText,
					payload: "Hello world",
				},
			},
		},
		{
			name: "runes split across fragments",
			stream: concat(
				masked(ws.OpText, false, "a\xe2"),
				masked(ws.OpContinuation, false, "\x82"),
				masked(ws.OpContinuation, false, "\xac\xf0\x9d"),
				masked(ws.OpContinuation, false, ""),
				masked(ws.OpContinuation, true, "\x84\x9e"),
			),
			want: []event{{
				op:      ws.OpText,
				payload: "a€𝄞",
			}},
		},
		{
			name: "empty fragments",
			stream: concat(
				masked(ws.OpText, false, ""),
				masked(ws.OpContinuation, false, ""),
				masked(ws.OpContinuation, true, ""),
			),
			want: []event{{
				op: ws.OpText,
			}},
		},
		{
			name: "binary fragments are not UTF-8 checked",
			stream: concat(
				masked(ws.OpBinary, false, "\xff"),
				masked(ws.OpContinuation, true, "\xfe"),
			),
			want: []event{{
				op:      ws.OpBinary,
				payload: "\xff\xfe",
			}},
		},
		{
			name: "ping 125 bytes and empty pong",
			stream: concat(
				masked(ws.OpPing, true, big(125)),
				masked(ws.OpPong, true, ""),
			),
			want: []event{
				{
					op:      ws.OpPing,
					payload: big(125),
				},
				{
					op: ws.OpPong,
				},
			},
		},
		{
			name:   "close without payload",
			stream: masked(ws.OpClose, true, ""),
			want: []event{{
				op: ws.OpClose,
			}},
		},
		{
			name:   "close echo data",
			stream: masked(ws.OpClose, true, closePayload(ws.StatusGoingAway, "bye ☺")),
			want: []event{{
				op:      ws.OpClose,
				payload: closePayload(ws.StatusGoingAway, "bye ☺"),
			}},
		},
		{
			name:   "close reason of 123 bytes",
			stream: masked(ws.OpClose, true, closePayload(4999, big(123))),
			want: []event{{
				op:      ws.OpClose,
				payload: closePayload(4999, big(123)),
			}},
		},
		{
			name: "messages after a fragmented one",
			stream: concat(
				masked(ws.OpBinary, false, "a"),
				masked(ws.OpContinuation, true, "b"),
				masked(ws.OpText, true, "c"),
				masked(ws.OpText, false, "d"),
				masked(ws.OpContinuation, true, "e"),
			),
			want: []event{
				{
					op:      ws.OpBinary,
					payload: "ab",
				},
				{
					op:      ws.OpText,
					payload: "c",
				},
				{
					op:      ws.OpText,
					payload: "de",
				},
			},
		},
	} {
		t.Run(test.name, func(t *testing.T) {
			got, err := feedChunks(t, test.stream, 0)
			if err != nil {
				t.Fatalf(
					"Feed() error: %v",
					err,
				)
			}
			if !equalEvents(got, test.want) {
				t.Fatalf(
					"got %s\nwant %s",
					eventsString(got), eventsString(test.want),
				)
			}
			// The same, fed in two pieces split in the middle.
			got, err = feedChunks(t, test.stream, 0, len(test.stream)/2)
			if err != nil || !equalEvents(got, test.want) {
				t.Fatalf(
					"split in two: got %s, %v\nwant %s",
					eventsString(got), err, eventsString(test.want),
				)
			}
		})
	}
}

func TestParserErrors(t *testing.T) {
	text := masked(ws.OpText, true, "ok")
	for _, test := range []struct {
		name   string
		stream []byte
		max    int
		want   []event // delivered before the error
		err    *CloseError
	}{
		{
			name:   "unmasked",
			stream: AppendFrame(nil, ws.OpText, []byte("hi")),
			err:    ErrUnmasked,
		},
		{
			name:   "RSV1",
			stream: withByte(text, 0, 0x40),
			err:    ErrReservedBits,
		},
		{
			name:   "RSV2",
			stream: withByte(text, 0, 0x20),
			err:    ErrReservedBits,
		},
		{
			name:   "RSV3 on a ping",
			stream: withByte(masked(ws.OpPing, true, ""), 0, 0x10),
			err:    ErrReservedBits,
		},
		{
			name:   "reserved data opcode 3",
			stream: masked(3, true, ""),
			err:    ErrBadOpcode,
		},
		{
			name:   "reserved data opcode 7",
			stream: masked(7, true, ""),
			err:    ErrBadOpcode,
		},
		{
			name:   "reserved control opcode 0xb",
			stream: masked(0xb, true, ""),
			err:    ErrBadOpcode,
		},
		{
			name:   "reserved control opcode 0xf",
			stream: masked(0xf, true, ""),
			err:    ErrBadOpcode,
		},
		{
			name:   "ping of 126 bytes",
			stream: masked(ws.OpPing, true, strings.Repeat("p", 126)),
			err:    ErrControlTooLong,
		},
		{
			name:   "close of 126 bytes",
			stream: masked(ws.OpClose, true, closePayload(1000, strings.Repeat("r", 124))),
			err:    ErrControlTooLong,
		},
		{
			name:   "control frame without FIN",
			stream: masked(ws.OpPing, false, ""),
			err:    ErrControlFragmented,
		},
		{
			name:   "continuation with no message",
			stream: masked(ws.OpContinuation, true, "x"),
			err:    ErrUnexpectedContinuation,
		},
		{
			name: "continuation after a complete message",
			stream: concat(
				masked(ws.OpText, false, "a"),
				masked(ws.OpContinuation, true, "b"),
				masked(ws.OpContinuation, true, "c"),
			),
			want: []event{{
				op:      ws.OpText,
				payload: "ab",
			}},
			err: ErrUnexpectedContinuation,
		},
		{
			name: "text inside a fragmented message",
			stream: concat(
				masked(ws.OpText, false, "a"),
				masked(ws.OpText, true, "b"),
			),
			err: ErrExpectedContinuation,
		},
		{
			name: "binary inside a fragmented message, after a ping",
			stream: concat(
				masked(ws.OpBinary, false, "a"),
				masked(ws.OpPing, true, ""),
				masked(ws.OpBinary, false, "b"),
			),
			want: []event{{
				op: ws.OpPing,
			}},
			err: ErrExpectedContinuation,
		},
		{
			name:   "close of 1 byte",
			stream: masked(ws.OpClose, true, "\x03"),
			err:    ErrBadCloseFrame,
		},
		{
			name:   "close with code 1005",
			stream: masked(ws.OpClose, true, closePayload(ws.StatusNoStatusRcvd, "")),
			err:    ErrBadCloseFrame,
		},
		{
			name:   "close reason not UTF-8",
			stream: masked(ws.OpClose, true, closePayload(1000, "\xce\xba\xe1\xbd")),
			err:    ErrInvalidUTF8,
		},
		{
			name:   "text not UTF-8",
			stream: masked(ws.OpText, true, "\xff"),
			err:    ErrInvalidUTF8,
		},
		{
			name:   "text with a surrogate",
			stream: masked(ws.OpText, true, "\xed\xa0\x80"),
			err:    ErrInvalidUTF8,
		},
		{
			name:   "text ending inside a rune",
			stream: masked(ws.OpText, true, "a\xe2\x82"),
			err:    ErrInvalidUTF8,
		},
		{
			name: "fragmented text ending inside a rune",
			stream: concat(
				masked(ws.OpText, false, "a\xe2"),
				masked(ws.OpContinuation, true, "\x82"),
			),
			err: ErrInvalidUTF8,
		},
		{
			name: "bad rune across fragments",
			stream: concat(
				masked(ws.OpText, false, "a\xe2"),
				masked(ws.OpContinuation, false, "\x28"),
			),
			err: ErrInvalidUTF8,
		},
		{
			// Fails fast: the message's end is never sent.
			name:   "first fragment already invalid",
			stream: masked(ws.OpText, false, "ok\xc0\xafok"),
			err:    ErrInvalidUTF8,
		},
		{
			// 0xf4 0x90 would be over U+10FFFF whatever follows.
			name:   "first fragment ends with an impossible rune start",
			stream: masked(ws.OpText, false, "ok\xf4\x90"),
			err:    ErrInvalidUTF8,
		},
		{
			name:   "65537 bytes",
			stream: masked(ws.OpBinary, true, strings.Repeat("x", 65537)),
			err:    ErrTooLarge,
		},
		{
			name: "65537 bytes in fragments",
			stream: concat(
				masked(ws.OpBinary, false, strings.Repeat("x", 65536)),
				masked(ws.OpPing, true, ""),
				masked(ws.OpContinuation, true, "x"),
			),
			want: []event{{
				op: ws.OpPing,
			}},
			err: ErrTooLarge,
		},
		{
			name: "over a MaxMessage of 10",
			stream: concat(
				masked(ws.OpText, true, "0123456789"),
				masked(ws.OpText, false, "01234"),
				masked(ws.OpContinuation, true, "567890"),
			),
			max: 10,
			want: []event{{
				op:      ws.OpText,
				payload: "0123456789",
			}},
			err: ErrTooLarge,
		},
		{
			// 64-bit length with the most significant bit set.
			name:   "length over 2^63",
			stream: []byte{0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0},
			err:    ErrTooLarge,
		},
	} {
		t.Run(test.name, func(t *testing.T) {
			for _, sizes := range [][]int{nil, {1}} {
				got, err := feedChunks(t, test.stream, test.max, sizes...)
				if err != test.err {
					t.Fatalf(
						"chunks %v: Feed() error = %v; want %v",
						sizes, err, test.err,
					)
				}
				if !equalEvents(got, test.want) {
					t.Fatalf(
						"chunks %v: got %s\nwant %s",
						sizes, eventsString(got), eventsString(test.want),
					)
				}
			}
		})
	}
}

func TestCloseCodes(t *testing.T) {
	for code := range 70000 {
		if code > 0xffff {
			break
		}
		want := (code >= 1000 && code <= 1003) ||
			(code >= 1007 && code <= 1014) ||
			(code >= 3000 && code <= 4999)
		stream := masked(ws.OpClose, true, closePayload(ws.StatusCode(code), "r"))
		_, err := feedChunks(t, stream, 0)
		if (err == nil) != want || (err != nil && err != ErrBadCloseFrame) {
			t.Fatalf(
				"close code %d: Feed() error = %v; want accepted: %v",
				code, err, want,
			)
		}
	}
}

// TestTooLargeFromHeader checks that a frame over the limit is refused as
// soon as its length is read, before its mask key and payload arrive.
func TestTooLargeFromHeader(t *testing.T) {
	for _, test := range []struct {
		name   string
		prefix []byte
		header int // bytes of the frame up to the length
	}{
		{
			name:   "whole message",
			header: 10,
		},
		{
			name:   "fragment",
			prefix: masked(ws.OpBinary, false, strings.Repeat("x", 60000)),
			header: 4,
		},
	} {
		t.Run(test.name, func(t *testing.T) {
			var f []byte
			if test.prefix == nil {
				f = masked(ws.OpBinary, true, strings.Repeat("y", 65537))
			} else {
				f = masked(ws.OpContinuation, true, strings.Repeat("y", 5537))
			}
			var p Parser
			defer p.Release()
			err := p.Feed(bytes.Clone(test.prefix), discard{})
			if err != nil {
				t.Fatal(err)
			}
			err = p.Feed(f[:test.header-1], discard{})
			if err != nil {
				t.Fatalf(
					"Feed() error before the length is whole: %v",
					err,
				)
			}
			err = p.Feed(f[test.header-1:test.header], discard{})
			if err != ErrTooLarge {
				t.Fatalf(
					"Feed() error = %v; want %v",
					err, ErrTooLarge,
				)
			}
		})
	}
}

// TestFailFastInFrame checks that bad text fails when its bytes arrive, not
// when its frame is whole.
func TestFailFastInFrame(t *testing.T) {
	bad := strings.Repeat("a", 100) + "\xc0\xaf" + strings.Repeat("b", 1000)
	for _, test := range []struct {
		name   string
		prefix []byte
		frame  []byte
	}{
		{
			name:  "whole message",
			frame: masked(ws.OpText, true, bad),
		},
		{
			name:  "first fragment",
			frame: masked(ws.OpText, false, bad),
		},
		{
			name:   "continuation",
			prefix: masked(ws.OpText, false, "ok"),
			frame:  masked(ws.OpContinuation, true, bad),
		},
	} {
		t.Run(test.name, func(t *testing.T) {
			var p Parser
			defer p.Release()
			err := p.Feed(bytes.Clone(test.prefix), discard{})
			if err != nil {
				t.Fatal(err)
			}
			// The header (4 bytes with a 16-bit length), the mask key
			// and the first 100 bytes: all valid.
			head := 4 + 4 + 100
			err = p.Feed(test.frame[:head], discard{})
			if err != nil {
				t.Fatalf(
					"Feed(valid start) error: %v",
					err,
				)
			}
			err = p.Feed(test.frame[head:head+2], discard{})
			if err != ErrInvalidUTF8 {
				t.Fatalf(
					"Feed(bad rune) error = %v; want %v",
					err, ErrInvalidUTF8,
				)
			}
		})
	}
}

func TestHandlerError(t *testing.T) {
	stream := concat(
		masked(ws.OpText, true, "a"),
		masked(ws.OpText, true, "b"),
		masked(ws.OpText, true, "c"),
	)
	var p Parser
	defer p.Release()
	r := recorder{failAt: 2}
	err := p.Feed(stream, &r)
	if err != errStop {
		t.Fatalf(
			"Feed() error = %v; want %v",
			err, errStop,
		)
	}
	if len(r.events) != 2 {
		t.Fatalf(
			"handler called %d times; want 2",
			len(r.events),
		)
	}
}

// TestIdleHoldsNothing checks that buffers go back to their pools as soon as
// they are empty, and what Buffered reports meanwhile.
func TestIdleHoldsNothing(t *testing.T) {
	stream := concat(
		masked(ws.OpText, false, "frag"),
		masked(ws.OpContinuation, true, "ment"),
		masked(ws.OpBinary, true, "whole"),
	)
	var p Parser
	defer p.Release()
	var r recorder
	// Frames of 10, 10 and 11 bytes (6 bytes of header each).
	steps := []struct {
		n        int // bytes fed
		buffered int
	}{
		{
			n:        1, // inside the first header
			buffered: 1,
		},
		{
			n:        7, // the rest of the header and 2 payload bytes
			buffered: 2,
		},
		{
			n:        4, // the first fragment's end, 2 bytes of the next header
			buffered: 4 + 2,
		},
		{
			n:        6, // the rest of the header and 2 payload bytes
			buffered: 4 + 2,
		},
		{
			n:        4, // the message's end and 2 bytes of the next header
			buffered: 2,
		},
		{
			n:        6, // the rest of the header and 2 payload bytes
			buffered: 2,
		},
		{
			n:        3, // the end
			buffered: 0,
		},
	}
	data := bytes.Clone(stream)
	for i, step := range steps {
		err := p.Feed(data[:step.n], &r)
		if err != nil {
			t.Fatal(err)
		}
		data = data[step.n:]
		if got := p.Buffered(); got != step.buffered {
			t.Fatalf(
				"step %d: Buffered() = %d; want %d",
				i, got, step.buffered,
			)
		}
	}
	if len(data) != 0 {
		t.Fatalf(
			"test steps leave %d bytes",
			len(data),
		)
	}
	if p.stash != nil || p.msg != nil {
		t.Fatalf(
			"idle parser holds buffers: stash %v, msg %v",
			p.stash != nil, p.msg != nil,
		)
	}
	want := []event{
		{
			op:      ws.OpText,
			payload: "fragment",
		},
		{
			op:      ws.OpBinary,
			payload: "whole",
		},
	}
	if !equalEvents(r.events, want) {
		t.Fatalf(
			"got %s\nwant %s",
			eventsString(r.events), eventsString(want),
		)
	}
}

func TestRelease(t *testing.T) {
	p := Parser{MaxMessage: 100}
	f := masked(ws.OpText, false, "abc")
	err := p.Feed(bytes.Clone(f[:len(f)-1]), discard{})
	if err != nil {
		t.Fatal(err)
	}
	p.Release()
	if p.Buffered() != 0 || p.MaxMessage != 100 {
		t.Fatalf(
			"after Release: Buffered() = %d, MaxMessage = %d",
			p.Buffered(), p.MaxMessage,
		)
	}
	// From scratch: a continuation is unexpected now.
	err = p.Feed(masked(ws.OpContinuation, true, "x"), discard{})
	if err != ErrUnexpectedContinuation {
		t.Fatalf(
			"Feed() error = %v; want %v",
			err, ErrUnexpectedContinuation,
		)
	}
}

func TestCloseError(t *testing.T) {
	var ce *CloseError
	if !errors.As(error(ErrTooLarge), &ce) || ce.Code != ws.StatusMessageTooBig {
		t.Fatalf(
			"errors.As(ErrTooLarge) = %v",
			ce,
		)
	}
	for _, err := range []*CloseError{
		ErrUnmasked,
		ErrReservedBits,
		ErrBadOpcode,
		ErrControlTooLong,
		ErrControlFragmented,
		ErrUnexpectedContinuation,
		ErrExpectedContinuation,
		ErrBadCloseFrame,
	} {
		if err.Code != ws.StatusProtocolError {
			t.Errorf(
				"%v: code %d; want 1002",
				err, err.Code,
			)
		}
	}
	if ErrInvalidUTF8.Code != ws.StatusInvalidFramePayloadData {
		t.Errorf(
			"ErrInvalidUTF8 code %d",
			ErrInvalidUTF8.Code,
		)
	}
	want := "frame: message too big (close code 1009)"
	if got := ErrTooLarge.Error(); got != want {
		t.Errorf(
			"Error() = %q; want %q",
			got, want,
		)
	}
}
