package frame

import "github.com/valyala/bytebufferpool"

// Partial frames and fragmented messages get buffers from pools of their own:
// bytebufferpool calibrates a pool to the sizes put back into it, and the two
// uses have different sizes (a split read is usually a few bytes to a few KiB,
// a fragmented message is usually bigger).
var (
	stashPool   bytebufferpool.Pool
	messagePool bytebufferpool.Pool
)

// release puts b back into pool and returns nil, for
// "p.stash = release(&stashPool, p.stash)".
//
// b is put back with its contents so that the pool calibrates on the size
// actually used; Put resets it.
func release(pool *bytebufferpool.Pool, b *bytebufferpool.ByteBuffer) *bytebufferpool.ByteBuffer {
	if b != nil {
		pool.Put(b)
	}
	return nil
}
