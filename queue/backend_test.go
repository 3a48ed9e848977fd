package queue

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/edgehub/edgehub/queue/llmtest"
)

// sdkBackends are the two SDK backends pointed at one test server.
func sdkBackends(s *llmtest.Server) map[string]Backend {
	return map[string]Backend{
		"openai":    NewOpenAI(BackendConfig{BaseURL: s.OpenAIURL(), APIKey: "test", Model: "m"}),
		"anthropic": NewAnthropic(BackendConfig{BaseURL: s.AnthropicURL(), APIKey: "test", Model: "m"}),
	}
}

func collect(ctx context.Context, b Backend, msg string) (string, int, error) {
	var sb strings.Builder
	n := 0
	err := b.Stream(ctx, &Job{Message: msg}, func(s string) error { sb.WriteString(s); n++; return nil })
	return sb.String(), n, err
}

func TestSDKBackendsParseTheStreamsExactly(t *testing.T) {
	t.Parallel()
	const answer = `Hello, "world"!  Tabs	and ünïcode — and \ backslashes`
	s := llmtest.Start(t, llmtest.Behavior{Answer: answer})
	for name, b := range sdkBackends(s) {
		got, n, err := collect(context.Background(), b, "question")
		if err != nil || got != answer || n != len(llmtest.Pieces(answer)) {
			t.Errorf("%s: %q in %d pieces, %v; want %q in %d", name, got, n, err, answer, len(llmtest.Pieces(answer)))
		}
		if r := s.Next(time.Second); r == nil || r.Message != "question" || r.Model != "m" {
			t.Errorf("%s: the server saw %+v", name, r)
		}
	}
}

func TestSDKBackendsFailures(t *testing.T) {
	t.Parallel()
	tcs := []struct {
		name     string
		behavior llmtest.Behavior
		is       error // the error wraps it; nil: success
		requests int   // requests the server saw
	}{
		{"429 with Retry-After, then an answer: the SDK retries once", llmtest.Behavior{Answer: "ok then", FailStatus: 429, FailTimes: 1, RetryAfter: 1}, nil, 2},
		{"503 every time: transient after one retry", llmtest.Behavior{FailStatus: 503}, ErrTransient, 2},
		{"400: not worth another attempt", llmtest.Behavior{FailStatus: 400}, nil, 1},
		{"cut mid-answer", llmtest.Behavior{Answer: "one two three four", CutAfter: 2}, ErrStreamCut, 1},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := llmtest.Start(t, tc.behavior)
			for name, b := range sdkBackends(s) {
				before := len(s.Requests())
				got, _, err := collect(context.Background(), b, "q")
				seen := len(s.Requests()) - before
				switch {
				case tc.behavior.FailStatus == 400:
					if err == nil || errors.Is(err, ErrTransient) || errors.Is(err, ErrStreamCut) {
						t.Errorf("%s: %v, want a permanent error", name, err)
					}
				case tc.is == nil:
					if err != nil || got != tc.behavior.Answer {
						t.Errorf("%s: %q, %v", name, got, err)
					}
				case !errors.Is(err, tc.is):
					t.Errorf("%s: %v (text %q), want %v", name, err, got, tc.is)
				}
				if seen != tc.requests {
					t.Errorf("%s: %d requests, want %d", name, seen, tc.requests)
				}
				s.Set(tc.behavior) // the failure count starts again for the next backend
			}
		})
	}
}

func TestSDKBackendCancelEndsTheRequest(t *testing.T) {
	t.Parallel()
	s := llmtest.Start(t, llmtest.Behavior{Answer: strings.Repeat("slow ", 100), Delay: 50 * time.Millisecond})
	for name, b := range sdkBackends(s) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { _, _, err := collect(ctx, b, "q"); done <- err }()
		r := s.Next(5 * time.Second)
		if r == nil {
			t.Fatalf("%s: no request", name)
		}
		cancel()
		select {
		case <-r.Ended:
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: the server's request did not end after the cancel", name)
		}
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("%s: %v, want context.Canceled", name, err)
		}
	}
}
