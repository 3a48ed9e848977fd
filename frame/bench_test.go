package frame

import (
	"strings"
	"testing"

	"github.com/gobwas/ws"
)

// The benchmarks copy the frame into the read buffer on every iteration,
// since Feed unmasks in place; the copy is part of what they measure, as it
// stands for the read.

func BenchmarkParse(b *testing.B) {
	for _, bench := range []struct {
		name    string
		op      ws.OpCode
		payload string
	}{
		{
			name:    "text-32",
			op:      ws.OpText,
			payload: strings.Repeat("t", 32),
		},
		{
			name:    "binary-4K",
			op:      ws.OpBinary,
			payload: strings.Repeat("b", 4096),
		},
	} {
		b.Run(bench.name, func(b *testing.B) {
			frame := masked(bench.op, true, bench.payload)
			buf := make([]byte, len(frame))
			var p Parser
			defer p.Release()
			b.ReportAllocs()
			b.SetBytes(int64(len(frame)))
			for b.Loop() {
				copy(buf, frame)
				err := p.Feed(buf, discard{})
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkParseSplit feeds a small text frame in two reads, cut in the
// middle of its payload, so the second half goes through the stash.
func BenchmarkParseSplit(b *testing.B) {
	frame := masked(ws.OpText, true, strings.Repeat("t", 32))
	buf := make([]byte, len(frame))
	half := len(frame) / 2
	var p Parser
	defer p.Release()
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		copy(buf, frame)
		err := p.Feed(buf[:half], discard{})
		if err != nil {
			b.Fatal(err)
		}
		err = p.Feed(buf[half:], discard{})
		if err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendFrame(b *testing.B) {
	payload := []byte(strings.Repeat("t", 32))
	dst := make([]byte, 0, 64)
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		dst = AppendFrame(dst[:0], ws.OpText, payload)
	}
}

func BenchmarkNew(b *testing.B) {
	payload := []byte(strings.Repeat("t", 32))
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	var f []byte
	for b.Loop() {
		f = New(ws.OpText, payload)
	}
	_ = f
}
