package frame

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/gobwas/ws"
)

// testMask is not all zeros, so that a missed unmasking shows.
var testMask = [4]byte{0x37, 0xfa, 0x21, 0x3d}

// masked returns a client frame.
func masked(op ws.OpCode, fin bool, payload string) []byte {
	return AppendMasked(nil, op, fin, []byte(payload), testMask)
}

func concat(frames ...[]byte) []byte {
	return bytes.Join(frames, nil)
}

type event struct {
	op      ws.OpCode
	payload string
}

func (e event) String() string {
	p := e.payload
	if len(p) > 40 {
		p = fmt.Sprintf("%q...(%d bytes)", p[:40], len(p))
	} else {
		p = fmt.Sprintf("%q", p)
	}
	return fmt.Sprintf("%v:%s", e.op, p)
}

func eventsString(evs []event) string {
	s := make([]string, len(evs))
	for i, e := range evs {
		s[i] = e.String()
	}
	return "[" + strings.Join(s, " ") + "]"
}

func equalEvents(a, b []event) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// recorder is a Handler that records copies of what it is given.
type recorder struct {
	events []event
	// failAt, if not zero, makes the failAt-th call return errStop.
	failAt int
}

var errStop = fmt.Errorf("handler stop")

func (r *recorder) OnFrame(op ws.OpCode, payload []byte) error {
	r.events = append(r.events, event{
		op:      op,
		payload: string(payload),
	})
	if len(r.events) == r.failAt {
		return errStop
	}
	return nil
}

// discard is a Handler that does nothing, without allocating.
type discard struct{}

func (discard) OnFrame(ws.OpCode, []byte) error { return nil }

// feedChunks feeds a copy of stream to a new Parser in chunks of the given
// sizes (the last size repeats), stopping at the first error. It checks the
// Buffered bound after every Feed and releases the Parser.
func feedChunks(t testing.TB, stream []byte, max int, sizes ...int) ([]event, error) {
	t.Helper()
	data := bytes.Clone(stream)
	p := Parser{MaxMessage: int32(max)}
	defer p.Release()
	var r recorder
	for i := 0; len(data) > 0; i++ {
		n := len(data)
		if len(sizes) > 0 {
			n = min(n, sizes[min(i, len(sizes)-1)])
		}
		err := p.Feed(data[:n], &r)
		if err != nil {
			return r.events, err
		}
		data = data[n:]
		checkBuffered(t, &p)
	}
	return r.events, nil
}

// checkBuffered checks that p holds no more than one message and one frame
// header and one control frame.
func checkBuffered(t testing.TB, p *Parser) {
	t.Helper()
	limit := p.maxMessage() + ws.MaxHeaderSize + ws.MaxControlFramePayloadSize
	if n := p.Buffered(); n > limit {
		t.Fatalf(
			"Buffered() = %d, over %d",
			n, limit,
		)
	}
}
