//go:build race

package frame

// raceEnabled is set when the race detector is on. It makes sync.Pool drop
// items at random, which makes pooled buffers allocate.
const raceEnabled = true
