package frame

import (
	"testing"

	"github.com/gobwas/ws"
)

func TestAllocsWholeFrame(t *testing.T) {
	frame := masked(ws.OpText, true, "a small text message, fed whole")
	buf := make([]byte, len(frame))
	var p Parser
	defer p.Release()
	allocs := testing.AllocsPerRun(1000, func() {
		copy(buf, frame)
		err := p.Feed(buf, discard{})
		if err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf(
			"Feed(whole frame): %v allocs; want 0",
			allocs,
		)
	}
}

func TestAllocsSplitFrame(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops buffers at random under the race detector")
	}
	frame := masked(ws.OpText, true, "a small text message, fed in two pieces")
	buf := make([]byte, len(frame))
	var p Parser
	defer p.Release()
	feed := func() {
		copy(buf, frame)
		for _, b := range [][]byte{buf[:10], buf[10:]} {
			err := p.Feed(b, discard{})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	feed() // warm the pool up
	allocs := testing.AllocsPerRun(1000, feed)
	if allocs != 0 {
		t.Fatalf(
			"Feed(split frame): %v allocs; want 0",
			allocs,
		)
	}
}

func TestAllocsFragmented(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops buffers at random under the race detector")
	}
	stream := concat(
		masked(ws.OpText, false, "frag"),
		masked(ws.OpPing, true, ""),
		masked(ws.OpContinuation, true, "mented"),
	)
	buf := make([]byte, len(stream))
	var p Parser
	defer p.Release()
	feed := func() {
		copy(buf, stream)
		err := p.Feed(buf, discard{})
		if err != nil {
			t.Fatal(err)
		}
	}
	feed()
	allocs := testing.AllocsPerRun(1000, feed)
	if allocs != 0 {
		t.Fatalf(
			"Feed(fragmented): %v allocs; want 0",
			allocs,
		)
	}
}

func TestAllocsAppendFrame(t *testing.T) {
	payload := make([]byte, 300)
	dst := make([]byte, 0, 1024)
	allocs := testing.AllocsPerRun(1000, func() {
		dst = AppendFrame(dst[:0], ws.OpBinary, payload)
	})
	if allocs != 0 {
		t.Fatalf(
			"AppendFrame(): %v allocs; want 0",
			allocs,
		)
	}
	allocs = testing.AllocsPerRun(1000, func() {
		dst = New(ws.OpBinary, payload)
	})
	if allocs != 1 {
		t.Fatalf(
			"New(): %v allocs; want 1",
			allocs,
		)
	}
}
