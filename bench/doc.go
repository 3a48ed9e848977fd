// Package bench holds edgehub's load tooling: the Go load generator
// (loadgen, run by cmd/edgehub-bench), the chart renderer (benchplot), k6
// scripts (k6/), tcpkali command lines (tcpkali/) and the recorded runs
// (results/). Its own tests run the k6 script against a real node.
package bench
