package queue

import (
	"context"
	"errors"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"
)

// Anthropic streams answers from the Anthropic Messages API with the
// official SDK.
type Anthropic struct {
	cfg    BackendConfig
	client anthropic.Client
}

// NewAnthropic returns the Anthropic backend.
func NewAnthropic(cfg BackendConfig) *Anthropic {
	cfg = cfg.withDefaults()
	opts := []option.RequestOption{option.WithMaxRetries(cfg.MaxRetries), option.WithHTTPClient(cfg.HTTPClient)}
	if cfg.BaseURL != "" {
		opts = append(opts, option.WithBaseURL(cfg.BaseURL))
	}
	if cfg.APIKey != "" {
		opts = append(opts, option.WithAPIKey(cfg.APIKey))
	}
	return &Anthropic{cfg: cfg, client: anthropic.NewClient(opts...)}
}

// Stream implements Backend.
func (a *Anthropic) Stream(ctx context.Context, job *Job, emit func(string) error) error {
	stream := a.client.Messages.NewStreaming(ctx, anthropic.MessageNewParams{
		Model:     anthropic.Model(a.cfg.model(job)),
		MaxTokens: a.cfg.MaxTokens,
		Messages:  []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock(job.Message))},
	})
	defer stream.Close() // closes the HTTP stream: a cancel reaches the server
	emitted, finished := false, false
	for stream.Next() {
		switch ev := stream.Current().AsAny().(type) {
		case anthropic.ContentBlockDeltaEvent:
			if d, ok := ev.Delta.AsAny().(anthropic.TextDelta); ok && d.Text != "" {
				emitted = true
				if err := emit(d.Text); err != nil {
					return err
				}
			}
		case anthropic.MessageStopEvent:
			finished = true
		}
	}
	if err := stream.Err(); err != nil {
		var apiErr *anthropic.Error
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
