// Package frame is the RFC 6455 frame codec of a WebSocket server that runs on
// an event loop.
//
// The event loop hands over whatever one read returned: a frame may be split
// at any byte and one read may hold several frames, and nothing may block
// waiting for the rest. A Parser therefore never reads: Feed parses the bytes
// it is given, calls a Handler for every complete data message and control
// frame, and keeps a trailing partial frame in a pooled buffer until a later
// Feed completes it. Frames are checked as soon as their first bytes arrive,
// so a frame that is going to be refused is never buffered.
//
// The receiving side enforces what RFC 6455 requires of a server: client
// frames are masked, reserved bits and opcodes are unused (no extension is
// negotiated), control frames are short and unfragmented, fragments follow the
// continuation rules, text is valid UTF-8 and close frames carry a code that
// may be sent on the wire. A violation is reported as a *CloseError holding
// the status code the connection must be failed with.
//
// The sending side encodes unmasked server frames (AppendFrame, New,
// NewClose) and, for tests and load generators, masked client frames
// (AppendMasked).
//
// The package builds on the low-level API of github.com/gobwas/ws (opcodes,
// status codes, header checks, the masking cipher) and takes its buffers from
// github.com/valyala/bytebufferpool.
//
// # Concurrency
//
// A Parser holds the state of one connection and must be used by one
// goroutine at a time; it starts no goroutines and does no I/O. The encode
// functions are pure and safe for concurrent use, and a frame returned by New
// may be shared read-only by any number of goroutines.
package frame
