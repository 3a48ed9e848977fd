package main

import (
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
)

// debugListen is -debug-listen: where to serve net/http/pprof, off when
// empty. It is a listener of its own rather than a route of the node's
// port so that profiles are never reachable where clients are: bind it to
// loopback (e.g. 127.0.0.1:6060).
var debugListen string

// serveDebug starts the pprof listener when addr is set; it serves until
// the process exits.
func serveDebug(addr string, log *slog.Logger) error {
	if addr == "" {
		return nil
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	log.Info("pprof", "addr", l.Addr().String())
	go func() {
		if err := http.Serve(l, mux); err != nil && !errors.Is(err, net.ErrClosed) {
			log.Error("pprof stopped", "err", err)
		}
	}()
	return nil
}
