package frame

import (
	"strings"
	"testing"

	"github.com/gobwas/ws"
)

// splitStream is a stream of frames of every kind and header size.
func splitStream() []byte {
	return concat(
		masked(ws.OpText, true, "hello"),
		masked(ws.OpBinary, true, ""),
		masked(ws.OpPing, true, "ping"),
		masked(ws.OpText, false, "frag"),
		masked(ws.OpPong, true, ""),
		masked(ws.OpContinuation, false, "mented €\xe2"),
		masked(ws.OpPing, true, strings.Repeat("p", 125)),
		masked(ws.OpContinuation, true, "\x82\xac"),
		masked(ws.OpBinary, true, strings.Repeat("b", 300)),
		masked(ws.OpBinary, false, strings.Repeat("c", 130)),
		masked(ws.OpContinuation, true, strings.Repeat("d", 7)),
		masked(ws.OpClose, true, closePayload(ws.StatusNormalClosure, "done")),
	)
}

func TestSplitEverywhere(t *testing.T) {
	stream := splitStream()
	want, err := feedChunks(t, stream, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(want) != 9 {
		t.Fatalf(
			"whole stream gave %d events: %s",
			len(want), eventsString(want),
		)
	}
	for i := 1; i < len(stream); i++ {
		got, err := feedChunks(t, stream, 0, i, len(stream))
		if err != nil || !equalEvents(got, want) {
			t.Fatalf(
				"split at %d: got %s, %v\nwant %s",
				i, eventsString(got), err, eventsString(want),
			)
		}
	}
	for _, size := range []int{1, 2, 3, 5, 7, 13, 14, 15, 127} {
		got, err := feedChunks(t, stream, 0, size)
		if err != nil || !equalEvents(got, want) {
			t.Fatalf(
				"chunks of %d: got %s, %v\nwant %s",
				size, eventsString(got), err, eventsString(want),
			)
		}
	}
}

// TestSplitEverywhereTwice splits the stream at every pair of points.
func TestSplitEverywhereTwice(t *testing.T) {
	stream := concat(
		masked(ws.OpText, false, "ab"),
		masked(ws.OpPing, true, "p"),
		masked(ws.OpContinuation, true, "c"),
		masked(ws.OpBinary, true, strings.Repeat("b", 126)),
	)
	want, err := feedChunks(t, stream, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(stream); i++ {
		for j := 1; i+j < len(stream); j++ {
			got, err := feedChunks(t, stream, 0, i, j, len(stream))
			if err != nil || !equalEvents(got, want) {
				t.Fatalf(
					"split at %d and %d: got %s, %v\nwant %s",
					i, i+j, eventsString(got), err, eventsString(want),
				)
			}
		}
	}
}

// TestSplit64BitHeader splits a frame with a 64-bit length everywhere in its
// header and near both ends of its payload.
func TestSplit64BitHeader(t *testing.T) {
	payload := strings.Repeat("€", 65535/3) + "x"
	stream := concat(
		masked(ws.OpText, true, payload),
		masked(ws.OpPing, true, "after"),
	)
	want := []event{
		{
			op:      ws.OpText,
			payload: payload,
		},
		{
			op:      ws.OpPing,
			payload: "after",
		},
	}
	var points []int
	for i := 1; i < 30; i++ {
		points = append(points, i, len(stream)-i)
	}
	for _, i := range points {
		got, err := feedChunks(t, stream, 0, i, len(stream))
		if err != nil || !equalEvents(got, want) {
			t.Fatalf(
				"split at %d: got %s, %v\nwant %s",
				i, eventsString(got), err, eventsString(want),
			)
		}
	}
}
