package netloop

import (
	"testing"
	"unsafe"
)

// Every accepted socket has a Conn: it fits the 256-byte size class. A
// field added here moves every idle connection to the next class (288
// bytes); pack it with the fields of its kind instead.
func TestConnSize(t *testing.T) {
	if size := unsafe.Sizeof(Conn{}); size > 256 {
		t.Fatalf("Conn is %d bytes; keep it within 256", size)
	}
}
