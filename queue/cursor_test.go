package queue

import (
	"errors"
	"slices"
	"testing"
)

func seqs(cs []Chunk) []int {
	var out []int
	for _, c := range cs {
		out = append(out, c.Seq)
	}
	return out
}

func TestCursorNext(t *testing.T) {
	t.Parallel()
	// The stored answer: attempt 2, seq 0..4 (seq 0 with Reset).
	stored := []Chunk{{Seq: 0, Attempt: 2, Reset: true}, {Seq: 1, Attempt: 2}, {Seq: 2, Attempt: 2}, {Seq: 3, Attempt: 2}, {Seq: 4, Attempt: 2}}
	fill := func(after int) ([]Chunk, error) { return stored[min(after+1, len(stored)):], nil }
	short := func(after int) ([]Chunk, error) { return nil, nil }
	broken := func(int) ([]Chunk, error) { return nil, errors.New("redis away") }
	tcs := []struct {
		name    string
		cur     Cursor
		c       Chunk
		fill    func(int) ([]Chunk, error)
		want    []int
		err     error
		wantCur Cursor
	}{
		{"first chunk", Cursor{Seq: -1}, Chunk{Seq: 0, Attempt: 1}, fill, []int{0}, nil, Cursor{1, 0}},
		{"next one", Cursor{1, 3}, Chunk{Seq: 4, Attempt: 1}, fill, []int{4}, nil, Cursor{1, 4}},
		{"duplicate", Cursor{2, 3}, Chunk{Seq: 3, Attempt: 2}, fill, nil, nil, Cursor{2, 3}},
		{"older after a replay", Cursor{2, 3}, Chunk{Seq: 1, Attempt: 2}, fill, nil, nil, Cursor{2, 3}},
		{"gap filled from the stored answer", Cursor{2, 0}, Chunk{Seq: 4, Attempt: 2}, fill, []int{1, 2, 3, 4}, nil, Cursor{2, 4}},
		{"gap that cannot be filled", Cursor{2, 0}, Chunk{Seq: 4, Attempt: 2}, short, nil, ErrGap, Cursor{2, 0}},
		{"gap with Redis away", Cursor{2, 0}, Chunk{Seq: 4, Attempt: 2}, broken, nil, ErrGap, Cursor{2, 0}},
		{"reset of a new attempt", Cursor{1, 7}, Chunk{Seq: 0, Attempt: 2, Reset: true}, fill, []int{0}, nil, Cursor{2, 0}},
		{"new attempt whose reset was lost", Cursor{1, 7}, Chunk{Seq: 3, Attempt: 2}, fill, []int{0, 1, 2, 3}, nil, Cursor{2, 3}},
		{"a zombie's chunk", Cursor{2, 1}, Chunk{Seq: 5, Attempt: 1}, fill, nil, nil, Cursor{2, 1}},
		{"after a replay of unknown attempt", Cursor{Seq: 2}, Chunk{Seq: 3, Attempt: 2}, fill, []int{3}, nil, Cursor{2, 3}},
	}
	for _, tc := range tcs {
		cur := tc.cur
		got, err := cur.Next(tc.c, tc.fill)
		if !errors.Is(err, tc.err) || !slices.Equal(seqs(got), tc.want) || cur != tc.wantCur {
			t.Errorf("%s: sent %v, %v, cursor %+v; want %v, %v, %+v", tc.name, seqs(got), err, cur, tc.want, tc.err, tc.wantCur)
		}
		if tc.name == "new attempt whose reset was lost" && !got[0].Reset {
			t.Errorf("%s: the filled seq 0 lost its Reset", tc.name)
		}
	}
}
