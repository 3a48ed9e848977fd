// Package llmtest is a local LLM server for tests: it speaks the OpenAI
// chat-completions and the Anthropic Messages streaming formats (SSE) on
// 127.0.0.1, and can answer slowly, fail with an HTTP status (429 with
// Retry-After, 5xx), or cut a stream mid-answer. It records every request
// and when each one ended, so a test can see that a cancel closed the
// stream. The backends are tested against it through the official SDKs.
//
// Safe for concurrent use; every request runs on net/http's goroutine.
package llmtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Behavior is how the server answers the next requests.
type Behavior struct {
	// Answer is the text streamed back; empty echoes the question.
	Answer string
	// Delay is the pause before each piece (a word with the spaces after
	// it) after the first.
	Delay time.Duration
	// FailStatus, when set, answers that status with an error body
	// instead of a stream; FailTimes limits it to the first requests (0:
	// every request). RetryAfter sets the Retry-After header (seconds).
	FailStatus int
	FailTimes  int
	RetryAfter int
	// CutAfter > 0 closes the connection after that many pieces, without
	// the stream's end event.
	CutAfter int
}

// Request is one request the server saw.
type Request struct {
	API     string // "openai" or "anthropic"
	Model   string
	Message string
	Ended   chan struct{} // closed when the server stopped serving it
}

// Server is the test server.
type Server struct {
	*httptest.Server

	mu       sync.Mutex
	behavior Behavior
	failed   int
	requests []*Request
	seen     chan *Request
}

// Start runs a server until the test ends.
func Start(t testing.TB, b Behavior) *Server {
	s := &Server{behavior: b, seen: make(chan *Request, 1024)}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", s.openai)
	mux.HandleFunc("POST /v1/messages", s.anthropic)
	s.Server = httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

// OpenAIURL is the base URL for the OpenAI SDK.
func (s *Server) OpenAIURL() string { return s.URL + "/v1/" }

// AnthropicURL is the base URL for the Anthropic SDK.
func (s *Server) AnthropicURL() string { return s.URL + "/" }

// Set changes the behavior for the next requests.
func (s *Server) Set(b Behavior) {
	s.mu.Lock()
	s.behavior, s.failed = b, 0
	s.mu.Unlock()
}

// Requests returns the requests seen so far.
func (s *Server) Requests() []*Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*Request(nil), s.requests...)
}

// Next waits up to d for the next request to arrive.
func (s *Server) Next(d time.Duration) *Request {
	select {
	case r := <-s.seen:
		return r
	case <-time.After(d):
		return nil
	}
}

type body struct {
	Model    string `json:"model"`
	Messages []struct {
		Content json.RawMessage `json:"content"`
	} `json:"messages"`
}

// question is the last message's text: a string (OpenAI) or text blocks.
func (b *body) question() string {
	if len(b.Messages) == 0 {
		return ""
	}
	raw := b.Messages[len(b.Messages)-1].Content
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var blocks []struct {
		Text string `json:"text"`
	}
	_ = json.Unmarshal(raw, &blocks)
	var out strings.Builder
	for _, bl := range blocks {
		out.WriteString(bl.Text)
	}
	return out.String()
}

// begin records a request and decides how to answer it: the pieces, or a
// failure status (already written).
func (s *Server) begin(w http.ResponseWriter, r *http.Request, api string) (*Request, Behavior, []string, bool) {
	var b body
	if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return nil, Behavior{}, nil, false
	}
	req := &Request{API: api, Model: b.Model, Message: b.question(), Ended: make(chan struct{})}
	s.mu.Lock()
	bh := s.behavior
	fail := bh.FailStatus != 0 && (bh.FailTimes == 0 || s.failed < bh.FailTimes)
	if fail {
		s.failed++
	}
	s.requests = append(s.requests, req)
	s.mu.Unlock()
	s.seen <- req
	if fail {
		defer close(req.Ended)
		if bh.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(bh.RetryAfter))
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(bh.FailStatus)
		fmt.Fprintf(w, `{"type":"error","error":{"type":"test_error","message":"test server says %d"}}`, bh.FailStatus)
		return nil, bh, nil, false
	}
	text := bh.Answer
	if text == "" {
		text = req.Message
	}
	return req, bh, Pieces(text), true
}

// Pieces splits text into its words, each with the spaces after it, so
// that the pieces concatenate to text.
func Pieces(text string) []string {
	var out []string
	start := 0
	for i := 1; i < len(text); i++ {
		if text[i-1] == ' ' && text[i] != ' ' {
			out = append(out, text[start:i])
			start = i
		}
	}
	if start < len(text) {
		out = append(out, text[start:])
	}
	return out
}

// stream writes the SSE events of pieces, pausing and cutting as bh says;
// it reports whether the answer was complete.
func stream(w http.ResponseWriter, r *http.Request, bh Behavior, pieces []string, event func(i int, p string) string) bool {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	fl := w.(http.Flusher)
	fl.Flush()
	for i, p := range pieces {
		if i > 0 && bh.Delay > 0 {
			select {
			case <-time.After(bh.Delay):
			case <-r.Context().Done():
				return false
			}
		}
		if bh.CutAfter > 0 && i >= bh.CutAfter {
			cut(w)
			return false
		}
		if _, err := fmt.Fprint(w, event(i, p)); err != nil {
			return false
		}
		fl.Flush()
	}
	return r.Context().Err() == nil
}

// cut drops the connection mid-stream.
func cut(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			conn.Close()
		}
	}
}

func jsonText(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func (s *Server) openai(w http.ResponseWriter, r *http.Request) {
	req, bh, pieces, ok := s.begin(w, r, "openai")
	if !ok {
		return
	}
	defer close(req.Ended)
	const head = `data: {"id":"chatcmpl-test","object":"chat.completion.chunk","created":1,"model":"test","choices":[{"index":0,`
	done := stream(w, r, bh, pieces, func(i int, p string) string {
		return head + `"delta":{"role":"assistant","content":` + jsonText(p) + `},"finish_reason":null}]}` + "\n\n"
	})
	if done {
		fmt.Fprint(w, head+`"delta":{},"finish_reason":"stop"}]}`+"\n\ndata: [DONE]\n\n")
	}
}

func (s *Server) anthropic(w http.ResponseWriter, r *http.Request) {
	req, bh, pieces, ok := s.begin(w, r, "anthropic")
	if !ok {
		return
	}
	defer close(req.Ended)
	ev := func(name, data string) string { return "event: " + name + "\ndata: " + data + "\n\n" }
	first := true
	done := stream(w, r, bh, pieces, func(i int, p string) string {
		var pre string
		if first {
			first = false
			pre = ev("message_start", `{"type":"message_start","message":{"id":"msg_test","type":"message","role":"assistant","model":"test","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":1,"output_tokens":1}}}`) +
				ev("content_block_start", `{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`)
		}
		return pre + ev("content_block_delta", `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":`+jsonText(p)+`}}`)
	})
	if done {
		fmt.Fprint(w, ev("content_block_stop", `{"type":"content_block_stop","index":0}`)+
			ev("message_delta", `{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":1}}`)+
			ev("message_stop", `{"type":"message_stop"}`))
	}
}
