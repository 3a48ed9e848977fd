package node

import (
	"context"
	"errors"
	"net"
	"net/http"
	"path"
	"strings"
	"time"
)

// internalHTTP is the listener of -internal-listen: /metrics and /api/*
// served there alone, as Centrifugo's internal port does, so that the
// public port (behind the load balancer) carries only /ws, /healthz,
// /readyz and the demo page. It is plain net/http: its clients are a
// scraper and the operator's tools, a handful of connections.
type internalHTTP struct {
	srv *http.Server
	ln  net.Listener
}

// internalPath reports whether -internal-listen takes p off the public
// port. It is decided on the cleaned path, before the mux, so a handler
// added under /api/ later is internal without anyone listing it here.
func internalPath(p string) bool {
	p = path.Clean("/" + p)
	return p == "/metrics" || p == "/api" || strings.HasPrefix(p, "/api/")
}

// splitInternal returns the mux for the public port. Without
// -internal-listen that is mux itself, serving everything. With it, the
// internal server serves mux's internal paths and the public port answers
// 404 to them.
func (n *Node) splitInternal(mux *http.ServeMux) *http.ServeMux {
	if n.cfg.InternalListen == "" {
		return mux
	}
	only := func(internal bool) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if internalPath(r.URL.Path) != internal {
				http.NotFound(w, r)
				return
			}
			mux.ServeHTTP(w, r)
		}
	}
	n.internal = &internalHTTP{srv: &http.Server{
		Handler:           only(true),
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}}
	public := http.NewServeMux()
	public.Handle("/", only(false))
	return public
}

// listenInternal binds -internal-listen; Listen calls it.
func (n *Node) listenInternal() error {
	if n.internal == nil {
		return nil
	}
	ln, err := net.Listen("tcp", n.cfg.InternalListen)
	if err != nil {
		return err
	}
	n.internal.ln = ln
	return nil
}

// serveInternal serves the internal listener until closeInternal; Run
// calls it.
func (n *Node) serveInternal() {
	if n.internal == nil {
		return
	}
	n.log.Info("internal HTTP (metrics, API) serving", "addr", n.internal.ln.Addr().String())
	go func() {
		if err := n.internal.srv.Serve(n.internal.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("internal HTTP stopped", "err", err)
		}
	}()
}

// closeInternal stops the internal listener at the end of a drain, so the
// drain itself can still be watched on /metrics.
func (n *Node) closeInternal(ctx context.Context) {
	if n.internal != nil {
		_ = n.internal.srv.Shutdown(ctx)
	}
}

// InternalAddr is the -internal-listen address after Listen, or nil.
func (n *Node) InternalAddr() net.Addr {
	if n.internal == nil || n.internal.ln == nil {
		return nil
	}
	return n.internal.ln.Addr()
}
