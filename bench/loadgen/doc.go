// Package loadgen drives an edgehub node over its client protocol
// (docs/PROTOCOL.md) and measures it: the load generator behind
// cmd/edgehub-bench.
//
// A run is one scenario (idle, fanout, rooms, storm, ai) bounded by its
// connection count, its duration and its timeouts; it closes every socket it
// opened before Run returns. Each client connection has one goroutine that
// reads its frames (the loader is allowed the simple model; the server is
// not), a small bufio.Reader and a parser that allocates nothing per frame,
// so one process holds ~19,000 connections in a few hundred MiB.
//
// Latencies go into HDR histograms (github.com/HdrHistogram/hdrhistogram-go)
// sharded by connection so that concurrent readers rarely share a lock.
// Server cost is read from /proc/PID (RSS, CPU) and from the node's
// /metrics (goroutines, connections, messages out). The loader measures its
// own CPU too and says in the summary when it, not the server, was the limit.
//
// Run may be called from any goroutine; a Config is not modified by it.
package loadgen
