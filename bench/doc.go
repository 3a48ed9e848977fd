// Package bench holds edgehub's load tooling: the Go load generator
// (loadgen, run by cmd/edgehub-bench), the chart renderer (benchplot), the
// kernel floor (floor), k6 scripts (k6/), tcpkali command lines (tcpkali/)
// and the recorded runs (results/). Its own tests run the k6 script against
// a real node.
//
// bench is a module of its own (github.com/edgehub/edgehub/bench) so that
// plotting and latency histograms stay out of the node's module graph. It
// uses the node's module from this checkout (a replace of ../) and builds
// the node in that module's directory, with its netpoll patch.
package bench
