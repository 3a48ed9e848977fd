package floor

import "testing"

// A small run measures something: every round costs the writer CPU, and
// the reader got every byte (Measure fails otherwise). No time is asserted.
func TestMeasure(t *testing.T) {
	if testing.Short() {
		t.Skip("opens sockets and pins threads")
	}
	res, err := Measure(Config{Conns: 200, Rounds: 3, WriterCPU: 0, ReaderCPU: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.WriterMicrosPerWrite) != 3 || res.MedianMicrosPerWrite <= 0 || res.ReaderMicrosPerWrite <= 0 {
		t.Fatalf("result %+v", res)
	}
}
