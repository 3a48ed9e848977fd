package main

// The end-to-end harness: edgehubtest runs the edgehub binary on a free
// loopback port (built once, by TestMain's edgehubtest.Main), and two
// clients talk to it: wsClient, a
// well-behaved client over gobwas/ws (ws.Dialer, wsutil), and rawClient, a
// TCP socket that writes hand-made handshakes and frames (frame.AppendMasked)
// to test what a well-behaved client never sends.
//
// Every wait has a timeout and every socket is closed in t.Cleanup. The
// tests are written against docs/PROTOCOL.md (the contract), not
// against the node's code.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/edgehub/edgehub/cmd/edgehub/edgehubtest"
	"github.com/edgehub/edgehub/frame"
)

// Timeouts of the harness. They bound waits; no test asserts a wall-clock
// time with them.
const (
	readTimeout  = 5 * time.Second        // one expected message
	quietTimeout = 400 * time.Millisecond // "nothing arrives"
)

func TestMain(m *testing.M) { edgehubtest.Main(m) }

// ---- HTTP ----

var httpClient = &http.Client{
	Timeout:   10 * time.Second,
	Transport: &http.Transport{DisableKeepAlives: true},
}

// httpDo sends a request and returns the status, headers and body.
func httpDo(t testing.TB, method, url, auth string, body []byte) (int, http.Header, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, url, err)
	}
	return resp.StatusCode, resp.Header, b
}

// metrics returns n's /metrics page.
func metrics(t testing.TB, n *edgehubtest.Node) string {
	t.Helper()
	code, _, body := httpDo(t, "GET", n.HTTP+"/metrics", "", nil)
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: status %d: %s", code, body)
	}
	return string(body)
}

// metricValue finds the sample of series (a name, with its labels if any,
// exactly as printed) in a Prometheus text page.
func metricValue(page, series string) (float64, bool) {
	for _, line := range strings.Split(page, "\n") {
		rest, ok := strings.CutPrefix(line, series+" ")
		if !ok {
			continue
		}
		f, err := strconv.ParseFloat(strings.Fields(rest)[0], 64)
		return f, err == nil
	}
	return 0, false
}

// hasMetric reports whether any sample of the metric name is present.
func hasMetric(page, name string) bool {
	for _, line := range strings.Split(page, "\n") {
		if strings.HasPrefix(line, name+" ") || strings.HasPrefix(line, name+"{") {
			return true
		}
	}
	return false
}

// vmRSS reads VmRSS of a process, in bytes.
func vmRSS(t testing.TB, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest) // "12345 kB"
			kb, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}

// ---- messages ----

// msg is one JSON message from the server, with its fields kept raw so that
// tests can compare bytes (publish data is kept byte-for-byte).
type msg struct {
	Type string
	raw  []byte
	f    map[string]json.RawMessage
}

func parseMsg(b []byte) (*msg, error) {
	m := &msg{raw: append([]byte(nil), b...)}
	if err := json.Unmarshal(m.raw, &m.f); err != nil {
		return nil, fmt.Errorf("not a JSON object: %q: %w", b, err)
	}
	if err := json.Unmarshal(m.f["type"], &m.Type); err != nil {
		return nil, fmt.Errorf("no string type: %q", b)
	}
	return m, nil
}

func (m *msg) String() string { return string(m.raw) }

func (m *msg) has(k string) bool { _, ok := m.f[k]; return ok }

// field returns the raw JSON of field k, or nil.
func (m *msg) field(k string) []byte { return m.f[k] }

func (m *msg) str(t testing.TB, k string) string {
	t.Helper()
	var s string
	if err := json.Unmarshal(m.f[k], &s); err != nil {
		t.Fatalf("%s: field %q is not a string: %s", m.Type, k, m)
	}
	return s
}

func (m *msg) num(t testing.TB, k string) int64 {
	t.Helper()
	var f float64
	if err := json.Unmarshal(m.f[k], &f); err != nil || m.f[k] == nil {
		t.Fatalf("%s: field %q is not a number: %s", m.Type, k, m)
	}
	return int64(f)
}

func (m *msg) boolean(t testing.TB, k string) bool {
	t.Helper()
	var b bool
	if err := json.Unmarshal(m.f[k], &b); err != nil || m.f[k] == nil {
		t.Fatalf("%s: field %q is not a bool: %s", m.Type, k, m)
	}
	return b
}

// numOK is for goroutines, which must not call t.Fatal.
func (m *msg) numOK(k string) (int64, bool) {
	var f float64
	if m.f[k] == nil || json.Unmarshal(m.f[k], &f) != nil {
		return 0, false
	}
	return int64(f), true
}

// ---- rooms ----

var roomSeq atomic.Int64

// uniqueRoom is a room name no other test uses.
func uniqueRoom(prefix string) string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s-%d-%x", prefix, roomSeq.Add(1), b)
}

// ---- wsClient: a well-behaved client over gobwas/ws ----

type wsClient struct {
	conn    net.Conn
	rd      *bufio.Reader // over the dialer's buffered reader, if any, then conn
	welcome *msg
	mu      sync.Mutex // serializes writes
	closed  bool
}

// dial connects to n's /ws without credentials and reads the welcome.
func dial(t testing.TB, n *edgehubtest.Node) *wsClient {
	t.Helper()
	c, err := dialWS(t, n, "", nil)
	if err != nil {
		t.Fatalf("dial %s: %v", n.Addr, err)
	}
	return c
}

// dialWS connects with query ("token=..." or "") and extra header, and reads
// the welcome. The socket is closed at cleanup.
func dialWS(t testing.TB, n *edgehubtest.Node, query string, header http.Header) (*wsClient, error) {
	t.Helper()
	u := n.WS
	if query != "" {
		u += "?" + query
	}
	d := ws.Dialer{Timeout: readTimeout}
	if header != nil {
		d.Header = ws.HandshakeHeaderHTTP(header)
	}
	ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
	defer cancel()
	conn, br, _, err := d.Dial(ctx, u)
	if err != nil {
		return nil, err
	}
	c := &wsClient{conn: conn, rd: bufio.NewReader(conn)}
	if br != nil {
		c.rd = bufio.NewReader(io.MultiReader(br, conn))
	}
	t.Cleanup(c.close)
	w, err := c.read(readTimeout)
	if err != nil {
		return nil, fmt.Errorf("reading welcome: %w", err)
	}
	if w.Type != "welcome" {
		return nil, fmt.Errorf("first message is not welcome: %s", w)
	}
	c.welcome = w
	return c, nil
}

// close sends a close frame (1000) and closes the socket; idempotent.
func (c *wsClient) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.closed = true
	_ = c.conn.SetWriteDeadline(time.Now().Add(time.Second))
	_ = ws.WriteFrame(c.conn, ws.MaskFrame(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, ""))))
	_ = c.conn.Close()
}

// read returns the next text message, answering pings on the way. A close
// frame from the server is answered and returned as a wsutil.ClosedError.
//
// Frames are read raw (ws.ReadHeader), not with wsutil's readers: those
// refuse a close code gobwas does not know as "not defined in spec", and
// 1013 (slow consumer, registered after RFC 6455) is one of them, so a
// client built on them cannot see why it was cut off.
func (c *wsClient) read(timeout time.Duration) (*msg, error) {
	if err := c.conn.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return nil, err
	}
	var (
		op   ws.OpCode
		data []byte
	)
	for {
		h, err := ws.ReadHeader(c.rd)
		if err != nil {
			return nil, err
		}
		p := make([]byte, h.Length)
		if _, err := io.ReadFull(c.rd, p); err != nil {
			return nil, err
		}
		if h.Masked {
			return nil, errors.New("server frame is masked (RFC 6455 §5.1 forbids it)")
		}
		switch h.OpCode {
		case ws.OpPing:
			if err := c.writeFrame(ws.NewPongFrame(p)); err != nil {
				return nil, err
			}
			continue
		case ws.OpPong:
			continue
		case ws.OpClose:
			code, reason := frame.ParseClose(p)
			var body []byte // echo the code, as RFC 6455 §5.5.1 suggests
			if code != ws.StatusNoStatusRcvd {
				body = ws.NewCloseFrameBody(code, "")
			}
			_ = c.writeFrame(ws.NewCloseFrame(body))
			return nil, wsutil.ClosedError{Code: code, Reason: reason}
		case ws.OpContinuation:
		default:
			op = h.OpCode
		}
		data = append(data, p...)
		if !h.Fin {
			continue
		}
		if op != ws.OpText {
			return nil, fmt.Errorf("got a frame with opcode %v, want text", op)
		}
		return parseMsg(data)
	}
}

// writeFrame masks f and writes it.
func (c *wsClient) writeFrame(f ws.Frame) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errors.New("closed")
	}
	_ = c.conn.SetWriteDeadline(time.Now().Add(readTimeout))
	return ws.WriteFrame(c.conn, ws.MaskFrameInPlace(f))
}

// next reads the next message or fails the test.
func (c *wsClient) next(t testing.TB) *msg {
	t.Helper()
	m, err := c.read(readTimeout)
	if err != nil {
		t.Fatalf("reading a message: %v", err)
	}
	return m
}

// expect reads the next message and fails the test unless it has type typ.
// WebSocket pings are answered and skipped by read.
func (c *wsClient) expect(t testing.TB, typ string) *msg {
	t.Helper()
	m := c.next(t)
	if m.Type != typ {
		t.Fatalf("want a %q message, got %s", typ, m)
	}
	return m
}

// expectError reads the next message and fails unless it is an error with
// one of codes.
func (c *wsClient) expectError(t testing.TB, codes ...string) *msg {
	t.Helper()
	m := c.expect(t, "error")
	code := m.str(t, "code")
	for _, want := range codes {
		if code == want {
			if !m.has("error") {
				t.Errorf("error without human text (\"error\" field): %s", m)
			}
			return m
		}
	}
	t.Fatalf("want error code %v, got %s", codes, m)
	return nil
}

// expectNothing fails if any message arrives within d.
func (c *wsClient) expectNothing(t testing.TB, d time.Duration) {
	t.Helper()
	m, err := c.read(d)
	if err == nil {
		t.Fatalf("want no message, got %s", m)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("want no message, got error %v", err)
	}
}

// sync sends a ping request with a fresh id and reads up to its pong,
// returning the messages that came before it.
func (c *wsClient) sync(t testing.TB) []*msg {
	t.Helper()
	id := uniqueRoom("sync")
	c.send(t, fmt.Sprintf(`{"type":"ping","id":%q}`, id))
	var before []*msg
	for {
		m := c.next(t)
		if m.Type == "pong" && bytes.Equal(m.field("id"), []byte(strconv.Quote(id))) {
			return before
		}
		before = append(before, m)
	}
}

// send writes one text message.
func (c *wsClient) send(t testing.TB, s string) {
	t.Helper()
	if err := c.sendErr(s); err != nil {
		t.Fatalf("send %.80q: %v", s, err)
	}
}

func (c *wsClient) sendErr(s string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errors.New("closed")
	}
	_ = c.conn.SetWriteDeadline(time.Now().Add(readTimeout))
	return wsutil.WriteClientMessage(c.conn, ws.OpText, []byte(s))
}

// sendJSON marshals v and sends it.
func (c *wsClient) sendJSON(t testing.TB, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	c.send(t, string(b))
}

// join joins room and returns the joined reply.
func (c *wsClient) join(t testing.TB, room string) *msg {
	t.Helper()
	c.sendJSON(t, map[string]any{"type": "join", "room": room})
	j := c.expect(t, "joined")
	if got := j.str(t, "room"); got != room {
		t.Fatalf("joined room %q, want %q", got, room)
	}
	return j
}

// readClosed reads until the server closes the WebSocket and returns the
// close code and reason, failing if the socket stays open past timeout.
func (c *wsClient) readClosed(t testing.TB, timeout time.Duration) (ws.StatusCode, string, []*msg) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var got []*msg
	for {
		m, err := c.read(time.Until(deadline))
		if err == nil {
			got = append(got, m)
			continue
		}
		var ce wsutil.ClosedError
		if errors.As(err, &ce) {
			return ce.Code, ce.Reason, got
		}
		t.Fatalf("want a close frame, got %v (after %d messages)", err, len(got))
	}
}

// ---- rawClient: hand-made handshakes and frames ----

type rawClient struct {
	conn net.Conn
	br   *bufio.Reader
}

// rawDial opens a TCP connection to addr; closed at cleanup.
func rawDial(t testing.TB, addr string) *rawClient {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, readTimeout)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	return &rawClient{conn: conn, br: bufio.NewReaderSize(conn, 4096)}
}

// wsKey is a fresh Sec-WebSocket-Key.
func wsKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.StdEncoding.EncodeToString(b[:])
}

// handshakeRequest is an upgrade request for /ws. over replaces or adds
// header lines ("Name", "value"); an empty value removes the header.
func handshakeRequest(host string, over ...string) string {
	names := []string{"Host", "Upgrade", "Connection", "Sec-WebSocket-Key", "Sec-WebSocket-Version"}
	vals := map[string]string{
		"Host": host, "Upgrade": "websocket", "Connection": "Upgrade",
		"Sec-WebSocket-Key": wsKey(), "Sec-WebSocket-Version": "13",
	}
	for i := 0; i+1 < len(over); i += 2 {
		if _, ok := vals[over[i]]; !ok {
			names = append(names, over[i])
		}
		vals[over[i]] = over[i+1]
	}
	var b strings.Builder
	b.WriteString("GET /ws HTTP/1.1\r\n")
	for _, name := range names {
		if v := vals[name]; v != "" {
			fmt.Fprintf(&b, "%s: %s\r\n", name, v)
		}
	}
	b.WriteString("\r\n")
	return b.String()
}

func (r *rawClient) write(t testing.TB, b []byte) {
	t.Helper()
	_ = r.conn.SetWriteDeadline(time.Now().Add(readTimeout))
	if _, err := r.conn.Write(b); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// response reads an HTTP response head (and body, if not 101).
func (r *rawClient) response(t testing.TB) (*http.Response, []byte) {
	t.Helper()
	_ = r.conn.SetReadDeadline(time.Now().Add(readTimeout))
	resp, err := http.ReadResponse(r.br, nil)
	if err != nil {
		t.Fatalf("reading the handshake response: %v", err)
	}
	var body []byte
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ = io.ReadAll(resp.Body)
	}
	resp.Body.Close()
	return resp, body
}

// upgrade sends a handshake (with extra header lines as in handshakeRequest),
// expects 101 and reads the welcome.
func (r *rawClient) upgrade(t testing.TB, over ...string) *msg {
	t.Helper()
	r.write(t, []byte(handshakeRequest(r.conn.RemoteAddr().String(), over...)))
	resp, body := r.response(t)
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: status %d, want 101: %s", resp.StatusCode, body)
	}
	return r.expect(t, "welcome")
}

// readFrame reads one server frame (a whole frame, not a message).
func (r *rawClient) readFrame(timeout time.Duration) (ws.Header, []byte, error) {
	_ = r.conn.SetReadDeadline(time.Now().Add(timeout))
	h, err := ws.ReadHeader(r.br)
	if err != nil {
		return h, nil, err
	}
	p := make([]byte, h.Length)
	if _, err := io.ReadFull(r.br, p); err != nil {
		return h, nil, err
	}
	if h.Masked {
		return h, p, errors.New("server frame is masked (RFC 6455 §5.1 forbids it)")
	}
	return h, p, nil
}

// readMessage reads the next data message, reassembling fragments and
// skipping (not answering) control frames other than close. A close frame
// returns a wsutil.ClosedError.
func (r *rawClient) readMessage(timeout time.Duration) (ws.OpCode, []byte, error) {
	deadline := time.Now().Add(timeout)
	var (
		op   ws.OpCode
		data []byte
	)
	for {
		h, p, err := r.readFrame(time.Until(deadline))
		if err != nil {
			return 0, nil, err
		}
		switch {
		case h.OpCode == ws.OpClose:
			code, reason := frame.ParseClose(p)
			return 0, nil, wsutil.ClosedError{Code: code, Reason: reason}
		case h.OpCode.IsControl():
			continue
		case h.OpCode != ws.OpContinuation:
			op = h.OpCode
		}
		data = append(data, p...)
		if h.Fin {
			return op, data, nil
		}
	}
}

// expect reads the next text message and fails unless it has type typ.
func (r *rawClient) expect(t testing.TB, typ string) *msg {
	t.Helper()
	op, data, err := r.readMessage(readTimeout)
	if err != nil {
		t.Fatalf("want a %q message: %v", typ, err)
	}
	if op != ws.OpText {
		t.Fatalf("want a text frame, got opcode %v", op)
	}
	m, err := parseMsg(data)
	if err != nil {
		t.Fatal(err)
	}
	if m.Type != typ {
		t.Fatalf("want a %q message, got %s", typ, m)
	}
	return m
}

// sendFrame writes a masked frame.
func (r *rawClient) sendFrame(t testing.TB, op ws.OpCode, fin bool, payload []byte) {
	t.Helper()
	r.write(t, maskedFrame(op, fin, payload))
}

func (r *rawClient) sendText(t testing.TB, s string) {
	t.Helper()
	r.sendFrame(t, ws.OpText, true, []byte(s))
}

var testMask = [4]byte{0x37, 0xfa, 0x21, 0x3d}

func maskedFrame(op ws.OpCode, fin bool, payload []byte) []byte {
	return frame.AppendMasked(nil, op, fin, payload, testMask)
}

// closeBody is a close frame payload with code and reason.
func closeBody(code uint16, reason string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, code), reason...)
}

// expectClose reads until a close frame and fails unless it carries code.
// Data messages on the way are skipped. A connection closed without a
// close frame fails too.
func (r *rawClient) expectClose(t testing.TB, code ws.StatusCode) string {
	t.Helper()
	deadline := time.Now().Add(readTimeout)
	for {
		_, _, err := r.readMessage(time.Until(deadline))
		if err == nil {
			continue
		}
		var ce wsutil.ClosedError
		if !errors.As(err, &ce) {
			t.Fatalf("want close %d, got %v", code, err)
		}
		if ce.Code != code {
			t.Fatalf("want close %d, got close %d %q", code, ce.Code, ce.Reason)
		}
		return ce.Reason
	}
}

// expectEOF fails unless the server closes the TCP connection within d.
func (r *rawClient) expectEOF(t testing.TB, d time.Duration) {
	t.Helper()
	_ = r.conn.SetReadDeadline(time.Now().Add(d))
	n, err := io.Copy(io.Discard, r.br)
	if err == nil || errors.Is(err, syscall.ECONNRESET) {
		return // EOF or reset: closed
	}
	t.Fatalf("want the server to close the connection within %v, got %v after %d bytes", d, err, n)
}

func newBufReader(conn net.Conn) *bufio.Reader { return bufio.NewReaderSize(conn, 4096) }

func isEOF(err error) bool { return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) }
