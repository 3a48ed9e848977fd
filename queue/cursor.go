package queue

import "errors"

// ErrGap is returned by Cursor.Next when chunks between the recipient's
// position and a live chunk are missing and could not be filled: the
// recipient must be told the answer broke off (ai-error).
var ErrGap = errors.New("answer interrupted: chunks missing, ask again or resume")

// Cursor is how far one recipient of a job's answer got: the attempt and
// seq of the last chunk it was sent (Seq -1: none of that attempt). It is
// the watermark that keeps a resume's replay and the live stream from
// sending a chunk twice, and a lost live chunk from leaving a gap.
type Cursor struct {
	Attempt int
	Seq     int
}

// NewCursor is the cursor of a recipient that holds every chunk up to seq
// of the job's current attempt (seq -1: none).
func NewCursor(seq int) Cursor { return Cursor{Seq: seq} }

// Next returns what a recipient at cur is sent for the live chunk c, in
// order, and moves cur: nothing for a duplicate or a chunk of an older
// attempt; c alone when it follows on; the missing chunks then c when
// there is a gap, read with fill (the job's stored answer after a seq).
// A chunk of a newer attempt starts the recipient over: its seq 0 carries
// Reset, and a gap before it is filled from the new attempt's start.
// ErrGap: the gap could not be filled; cur is left as it was.
func (cur *Cursor) Next(c Chunk, fill func(after int) ([]Chunk, error)) ([]Chunk, error) {
	attempt := cur.Attempt
	seq := cur.Seq
	switch {
	case cur.Attempt != 0 && c.Attempt != 0 && c.Attempt < cur.Attempt:
		return nil, nil // a zombie attempt
	case c.Attempt > cur.Attempt && cur.Attempt != 0:
		seq = -1 // the recipient drops what it holds
	case c.Seq <= seq:
		return nil, nil
	}
	attempt = max(attempt, c.Attempt)
	if c.Seq == seq+1 {
		cur.Attempt, cur.Seq = attempt, c.Seq
		return []Chunk{c}, nil
	}
	stored, err := fill(seq)
	if err != nil {
		return nil, errors.Join(ErrGap, err)
	}
	out := make([]Chunk, 0, c.Seq-seq)
	for _, s := range stored {
		if s.Seq != seq+1+len(out) || s.Seq >= c.Seq || (s.Attempt != 0 && c.Attempt != 0 && s.Attempt != c.Attempt) {
			break
		}
		out = append(out, s)
	}
	if len(out) != c.Seq-seq-1 {
		return nil, ErrGap
	}
	cur.Attempt, cur.Seq = attempt, c.Seq
	return append(out, c), nil
}

// Replayed moves cur past the chunks a replay sent.
func (cur *Cursor) Replayed(cs []Chunk) {
	for _, c := range cs {
		if c.Attempt > cur.Attempt {
			cur.Attempt = c.Attempt
		}
		cur.Seq = c.Seq
	}
}
