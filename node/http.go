package node

import (
	"embed"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"

	"github.com/VictoriaMetrics/metrics"
)

//go:embed web
var webFiles embed.FS

// routes is the HTTP API and the demo page, served on the WebSocket port
// (/metrics and /api/* on -internal-listen instead when it is set: see
// splitInternal).
func (n *Node) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", n.healthz)
	mux.HandleFunc("GET /readyz", n.readyz)
	mux.HandleFunc("GET /metrics", n.metricsPage)
	mux.HandleFunc("POST /api/publish", n.withAPIKey(n.apiPublish))
	mux.HandleFunc("GET /api/fleet", n.withAPIKey(n.apiFleet))
	mux.HandleFunc("GET /api/queues", n.withAPIKey(n.apiQueues))
	mux.HandleFunc("POST /api/revoke", n.withAPIKey(n.apiRevoke))
	web, _ := fs.Sub(webFiles, "web")
	mux.Handle("GET /", http.FileServerFS(web))
	return n.splitInternal(mux)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// apiError answers in the shape of the protocol's error message.
func apiError(w http.ResponseWriter, status int, code, text string) {
	writeJSON(w, status, map[string]string{"code": code, "error": text})
}

// healthz is the load balancer's check: 503 as soon as a drain starts, so
// no new client is sent here.
func (n *Node) healthz(w http.ResponseWriter, _ *http.Request) {
	if n.draining.Load() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "draining"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz reports whether the node can serve: its dependencies answer (the
// embedded node has none) and it is not draining.
func (n *Node) readyz(w http.ResponseWriter, r *http.Request) {
	if n.draining.Load() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "draining"})
		return
	}
	if err := n.bus.Ready(r.Context()); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func (n *Node) metricsPage(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	n.metrics.set.WritePrometheus(w)
	metrics.WriteProcessMetrics(w) // go_* and process_*
}

// withAPIKey guards the HTTP API. With -api-key set, requests need
// "Authorization: Bearer <key>". Without one, the API is open on a node
// without auth (the embedded demo) and closed on a node with auth.
func (n *Node) withAPIKey(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		switch {
		case n.cfg.APIKey != "":
			if !keyMatches(bearer(r.Header.Get("Authorization")), n.cfg.APIKey) {
				apiError(w, http.StatusUnauthorized, codeUnauthorized, "a valid API key is required (Authorization: Bearer <key>)")
				return
			}
		case n.verify != nil:
			apiError(w, http.StatusUnauthorized, codeUnauthorized, "the HTTP API is disabled: this node checks tokens but has no -api-key")
			return
		}
		h(w, r)
	}
}

func (n *Node) apiPublish(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, int64(n.cfg.MaxMessage)+1))
	if err != nil {
		apiError(w, http.StatusBadRequest, codeBadRequest, "cannot read the body")
		return
	}
	if len(body) > n.cfg.MaxMessage {
		apiError(w, http.StatusRequestEntityTooLarge, codeTooLarge, "body over -max-message")
		return
	}
	var req struct {
		Room string          `json:"room"`
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		apiError(w, http.StatusBadRequest, codeBadRequest, "body must be {\"room\": string, \"data\": any JSON}: "+err.Error())
		return
	}
	if !validRoom([]byte(req.Room)) {
		apiError(w, http.StatusBadRequest, codeBadRequest, errRoomName.Error())
		return
	}
	if req.Data == nil {
		apiError(w, http.StatusBadRequest, codeBadRequest, "publish needs data")
		return
	}
	offset, err := n.publishData(r.Context(), req.Room, "api", req.Data)
	if err != nil {
		apiError(w, http.StatusServiceUnavailable, codeUnavailable, "cannot publish now: "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]uint64{"offset": offset})
}

func (n *Node) apiQueues(w http.ResponseWriter, r *http.Request) {
	stats, err := n.ai.Stats(r.Context())
	if err != nil {
		apiError(w, http.StatusServiceUnavailable, codeUnavailable, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"queues": stats})
}
