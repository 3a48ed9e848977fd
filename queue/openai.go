package queue

import (
	"context"
	"errors"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

// OpenAI streams chat completions from an OpenAI-compatible server with
// the official SDK.
type OpenAI struct {
	cfg    BackendConfig
	client openai.Client
}

// NewOpenAI returns the OpenAI backend.
func NewOpenAI(cfg BackendConfig) *OpenAI {
	cfg = cfg.withDefaults()
	opts := []option.RequestOption{option.WithMaxRetries(cfg.MaxRetries), option.WithHTTPClient(cfg.HTTPClient)}
	if cfg.BaseURL != "" {
		opts = append(opts, option.WithBaseURL(cfg.BaseURL))
	}
	if cfg.APIKey != "" {
		opts = append(opts, option.WithAPIKey(cfg.APIKey))
	}
	return &OpenAI{cfg: cfg, client: openai.NewClient(opts...)}
}

// Stream implements Backend.
func (o *OpenAI) Stream(ctx context.Context, job *Job, emit func(string) error) error {
	stream := o.client.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{
		Model:     o.cfg.model(job),
		Messages:  []openai.ChatCompletionMessageParamUnion{openai.UserMessage(job.Message)},
		MaxTokens: openai.Int(o.cfg.MaxTokens),
	})
	defer stream.Close() // closes the HTTP stream: a cancel reaches the server
	emitted, finished := false, false
	for stream.Next() {
		chunk := stream.Current()
		for _, ch := range chunk.Choices {
			if ch.Delta.Content != "" {
				emitted = true
				if err := emit(ch.Delta.Content); err != nil {
					return err
				}
			}
			if ch.FinishReason != "" {
				finished = true
			}
		}
	}
	if err := stream.Err(); err != nil {
		var apiErr *openai.Error
		status := 0
		if errors.As(err, &apiErr) {
			status = apiErr.StatusCode
		}
		return classify(ctx, err, status, emitted)
	}
	if !finished && ctx.Err() == nil {
		return ErrStreamCut
	}
	return nil
}
