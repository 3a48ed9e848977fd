package queue

import "context"

// answer runs backend for one attempt of job and hands publish each chunk
// in order. The chunk before the last is held back until the next one
// arrives, so that the last chunk can carry Done; an answer with no text
// is one empty last chunk. The first chunk carries reset (a retried
// attempt). A publish error stops the backend and is returned.
func answer(ctx context.Context, backend Backend, job *Job, reset bool, publish func(Chunk) error) error {
	var held *Chunk
	seq := 0
	emit := func(content string) error {
		if held != nil {
			if err := publish(*held); err != nil {
				return err
			}
		}
		held = &Chunk{Job: job.ID, Seq: seq, Content: content, Attempt: job.Attempt, Reset: reset && seq == 0}
		seq++
		return ctx.Err()
	}
	err := backend.Stream(ctx, job, emit)
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		return err
	}
	if held == nil {
		held = &Chunk{Job: job.ID, Attempt: job.Attempt, Reset: reset}
	}
	held.Done = true
	return publish(*held)
}
