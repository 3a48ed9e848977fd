package queue

import (
	"context"
	"strings"
	"time"
)

// Echo is the demo and benchmark backend: it answers with the words of
// the question, one word per chunk, Delay apart, so its output is known in
// advance.
type Echo struct {
	Delay time.Duration
}

// Stream implements Backend.
func (e Echo) Stream(ctx context.Context, job *Job, emit func(string) error) error {
	var pause *time.Timer
	for i, word := range strings.Fields(job.Message) {
		if i > 0 && e.Delay > 0 {
			if pause == nil {
				pause = time.NewTimer(e.Delay)
				defer pause.Stop()
			} else {
				pause.Reset(e.Delay)
			}
			select {
			case <-pause.C:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if err := emit(word); err != nil {
			return err
		}
	}
	return nil
}
