package queue

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// BackendConfig configures the SDK backends; the zero value means the
// SDK's own defaults, which read OPENAI_BASE_URL / OPENAI_API_KEY or
// ANTHROPIC_BASE_URL / ANTHROPIC_API_KEY from the environment.
type BackendConfig struct {
	BaseURL string // an OpenAI-compatible server (vLLM, llama.cpp, Ollama, OpenAI) or Anthropic's
	APIKey  string
	Model   string // model of jobs that name none
	// MaxRetries is how often the SDK retries a 429 or 5xx (honouring
	// Retry-After) before the attempt fails as transient; 1. The queue
	// does not retry inside an attempt: a transient failure becomes the
	// job's next attempt.
	MaxRetries int
	MaxTokens  int64        // longest answer (Anthropic requires one); 1024
	HTTPClient *http.Client // http.DefaultClient when nil
}

// ErrStreamCut is wrapped by the error of an answer whose stream ended
// before its end event: the client gets ai-error, never a short answer
// marked done.
var ErrStreamCut = errors.New("the answer stream broke off")

func (c BackendConfig) withDefaults() BackendConfig {
	if c.MaxRetries <= 0 {
		c.MaxRetries = 1
	}
	if c.MaxTokens <= 0 {
		c.MaxTokens = 1024
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: 10 * time.Minute}
	}
	return c
}

func (c BackendConfig) model(job *Job) string {
	if job.Model != "" {
		return job.Model
	}
	return c.Model
}

// classify turns an SDK error into the queue's terms: before any text, a
// 429, a 5xx or a failed connection is ErrTransient (another attempt may
// work); after text, any failure is a cut answer.
func classify(ctx context.Context, err error, status int, emitted bool) error {
	if err == nil || ctx.Err() != nil {
		return ctx.Err()
	}
	if emitted {
		return fmt.Errorf("%w: %v", ErrStreamCut, err)
	}
	if status == 0 || status == http.StatusTooManyRequests || status >= 500 {
		return fmt.Errorf("%w: %v", ErrTransient, err)
	}
	return err
}
