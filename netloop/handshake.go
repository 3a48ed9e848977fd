package netloop

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/gobwas/ws"
	"github.com/valyala/bytebufferpool"
)

// requestPool holds the bytes of HTTP requests that arrived in pieces.
var requestPool bytebufferpool.Pool

var headerEnd = []byte("\r\n\r\n")

// Upgrade is a WebSocket handshake request, as Handler.Authorize sees it.
type Upgrade struct {
	URI        string
	RemoteAddr net.Addr
	header     []string // key, value, key, value: the headers the upgrade itself does not consume
}

// Header returns the first value of the named header ("" if absent).
// The handshake's own headers (Host, Upgrade, Connection, Sec-WebSocket-*)
// are not kept.
func (u *Upgrade) Header(name string) string {
	for i := 0; i+1 < len(u.header); i += 2 {
		if strings.EqualFold(u.header[i], name) {
			return u.header[i+1]
		}
	}
	return ""
}

// Query returns the named query parameter of the request URI.
func (u *Upgrade) Query(name string) string {
	_, q, ok := strings.Cut(u.URI, "?")
	if !ok {
		return ""
	}
	v, _ := url.ParseQuery(q)
	return v.Get(name)
}

// readHTTP collects an HTTP request until its head (and body) is complete,
// then upgrades it or serves it. Several pipelined requests may be in data.
func (c *Conn) readHTTP(data []byte) {
	if c.answered() {
		c.releaseRequest() // the final answer is out: ignore what follows
		return
	}
	if c.request == nil {
		c.request = requestPool.Get()
	}
	c.request.B = append(c.request.B, data...)
	for c.request != nil && c.state.Load() == stateHTTP && !c.answered() {
		buf := c.request.B
		end := bytes.Index(buf, headerEnd)
		if end < 0 {
			if len(buf) > c.srv.cfg.MaxRequestHeader {
				c.closeAfter(plainResponse(http.StatusRequestHeaderFieldsTooLarge, "request header too large"))
			}
			return
		}
		n := end + len(headerEnd)
		if n > c.srv.cfg.MaxRequestHeader {
			c.closeAfter(plainResponse(http.StatusRequestHeaderFieldsTooLarge, "request header too large"))
			return
		}
		if requestPath(buf[:n]) == c.srv.cfg.Path {
			c.upgrade(buf[:n], buf[n:])
			c.releaseRequest()
			return
		}
		used, complete := c.serveHTTP(buf[:n], buf[n:])
		if !complete {
			return
		}
		rest := copy(buf, buf[used:])
		c.request.B = buf[:rest]
		if rest == 0 {
			c.releaseRequest()
		}
	}
}

func (c *Conn) releaseRequest() {
	if c.request != nil {
		requestPool.Put(c.request)
		c.request = nil
	}
}

// answered reports whether the connection is closing after a final answer.
func (c *Conn) answered() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closing
}

// requestPath is the path of the request line, without the query.
func requestPath(head []byte) string {
	line, _, _ := bytes.Cut(head, []byte("\r\n"))
	_, rest, _ := bytes.Cut(line, []byte(" "))
	uri, _, _ := bytes.Cut(rest, []byte(" "))
	path, _, _ := bytes.Cut(uri, []byte("?"))
	return string(path)
}

type readWriter struct {
	io.Reader
	io.Writer
}

// upgrade runs the WebSocket handshake on the buffered request head; rest
// is whatever followed it (a first frame sent in the same packet).
func (c *Conn) upgrade(head, rest []byte) {
	s := c.srv
	up := Upgrade{RemoteAddr: c.nc.RemoteAddr()}
	u := ws.Upgrader{
		OnRequest: func(uri []byte) error {
			up.URI = string(uri)
			return nil
		},
		OnHeader: func(key, value []byte) error {
			up.header = append(up.header, string(key), string(value))
			return nil
		},
		OnBeforeUpgrade: func() (ws.HandshakeHeader, error) {
			session, reject := s.handler.Authorize(&up)
			if reject != nil {
				return nil, ws.RejectConnectionError(
					ws.RejectionStatus(reject.Status),
					ws.RejectionReason(reject.Reason))
			}
			c.session = session
			return nil, nil
		},
	}
	var resp bytes.Buffer
	if _, err := u.Upgrade(readWriter{bytes.NewReader(head), &resp}); err != nil {
		if resp.Len() == 0 { // gobwas answers nothing to a malformed request line
			resp.Write(plainResponse(http.StatusBadRequest, "malformed HTTP request"))
		}
		s.metrics.rejected(resp.Bytes())
		c.closeAfter(resp.Bytes())
		return
	}
	now := s.now()
	// The first ping comes up to half a heartbeat early, at random:
	// connections opened together (a mass reconnect after a deploy, a load
	// test) would otherwise be pinged, and answer, all in the same instant,
	// every heartbeat.
	c.lastPing = now - rand.Int64N(int64(s.cfg.Heartbeat)/2+1)
	s.metrics.handshakeDuration.Update(float64(now-c.since.Load()) / 1e9)
	c.opened = true
	c.since.Store(now)
	c.state.Store(stateOpen)
	s.conns.open.Add(1)
	s.metrics.connectionsTotal.Inc()
	c.Send(resp.Bytes())
	s.wheel.schedule(c, c.lastPing+int64(s.cfg.Heartbeat))
	s.handler.OnOpen(c)
	if len(rest) > 0 {
		c.readFrames(rest)
	}
}

// serveHTTP answers one plain HTTP request whose head is complete. It
// reports how many buffered bytes the request used, and complete = false
// while its body is still arriving or when the connection is closing.
func (c *Conn) serveHTTP(head, after []byte) (used int, complete bool) {
	req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(head)))
	if err != nil {
		c.closeAfter(plainResponse(http.StatusBadRequest, "malformed HTTP request"))
		return 0, false
	}
	if len(req.TransferEncoding) > 0 {
		c.closeAfter(plainResponse(http.StatusLengthRequired, "send a Content-Length"))
		return 0, false
	}
	size := max(int(req.ContentLength), 0)
	if size > c.srv.cfg.MaxRequestBody {
		c.closeAfter(jsonError(http.StatusRequestEntityTooLarge, "too_large", "request body over "+strconv.Itoa(c.srv.cfg.MaxRequestBody)+" bytes"))
		return 0, false
	}
	if len(after) < size {
		if len(after) == 0 && strings.EqualFold(req.Header.Get("Expect"), "100-continue") {
			c.Send([]byte("HTTP/1.1 100 Continue\r\n\r\n"))
		}
		return 0, false
	}
	req.Body = io.NopCloser(bytes.NewReader(after[:size]))
	req.RemoteAddr = c.nc.RemoteAddr().String()
	w := &responseWriter{header: make(http.Header)}
	c.callHandler(w, req)
	keepAlive := !req.Close && req.ProtoAtLeast(1, 1)
	raw := w.encode(req, keepAlive)
	if keepAlive {
		c.Send(raw)
		c.since.Store(c.srv.now())
	} else {
		c.closeAfter(raw)
	}
	return len(head) + size, keepAlive
}

// callHandler runs ServeHTTP, turning a panic into a 500: a bug in one
// route must not take the event loop's worker down with it.
func (c *Conn) callHandler(w *responseWriter, req *http.Request) {
	defer func() {
		if p := recover(); p != nil {
			w.reset()
			w.header.Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprintf(w, "internal error\n")
		}
	}()
	c.srv.handler.ServeHTTP(w, req)
}

// responseWriter buffers a whole answer; answers here are small (JSON, the
// metrics page, the demo page).
type responseWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (w *responseWriter) Header() http.Header { return w.header }

func (w *responseWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

func (w *responseWriter) Write(b []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.body.Write(b)
}

func (w *responseWriter) reset() {
	w.header = make(http.Header)
	w.status = 0
	w.body.Reset()
}

func (w *responseWriter) encode(req *http.Request, keepAlive bool) []byte {
	w.WriteHeader(http.StatusOK)
	if w.header.Get("Content-Type") == "" && w.body.Len() > 0 {
		w.header.Set("Content-Type", http.DetectContentType(w.body.Bytes()))
	}
	resp := http.Response{
		StatusCode:    w.status,
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        w.header,
		Body:          io.NopCloser(&w.body),
		ContentLength: int64(w.body.Len()),
		Close:         !keepAlive,
		Request:       req,
	}
	var out bytes.Buffer
	out.Grow(w.body.Len() + 256)
	_ = resp.Write(&out)
	return out.Bytes()
}

// plainResponse is a final answer written before any handler runs.
func plainResponse(status int, text string) []byte {
	return []byte(fmt.Sprintf("HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s\n",
		status, http.StatusText(status), len(text)+1, text))
}

// jsonError is a final answer in the API's error shape.
func jsonError(status int, code, text string) []byte {
	body := fmt.Sprintf(`{"code":%q,"error":%q}`, code, text)
	return []byte(fmt.Sprintf("HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		status, http.StatusText(status), len(body), body))
}
