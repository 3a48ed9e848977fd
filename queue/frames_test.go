package queue

import (
	"testing"
	"time"
)

func TestEventsRoundTrip(t *testing.T) {
	t.Parallel()
	job := &Job{ID: "j1", Queue: "code", Created: time.UnixMilli(1700000000123)}
	s := newSink()
	batch := []Chunk{{Seq: 0, Content: "a \"b\"", Reset: true, Attempt: 2}, {Seq: 1, Content: "c", Done: true, Attempt: 2}}
	if err := Dispatch(chunkEvent(job, batch), s); err != nil {
		t.Fatal(err)
	}
	got, _ := s.got("j1")
	if len(got) != 2 || got[0].Content != `a "b"` || !got[0].Reset || got[1].Seq != 1 || !got[1].Done || got[1].Attempt != 2 {
		t.Fatalf("chunks %+v", got)
	}
	if err := Dispatch(failEvent(job, "gave up"), s); err != nil {
		t.Fatal(err)
	}
	if _, failed := s.got("j1"); failed != "gave up" {
		t.Fatalf("failed %q", failed)
	}
	for _, bad := range []string{`{`, `{"kind":"revoke","jti":"x"}`, `{"kind":"ai"}`} {
		if Dispatch([]byte(bad), s) == nil {
			t.Errorf("%s dispatched", bad)
		}
	}
	room := &Job{ID: "j2", Room: "r"}
	if f := string(ChunkFrame(room, Chunk{Seq: 3, Content: "x", Reset: true})); f != `{"type":"ai-chunk","job":"j2","seq":3,"content":"x","done":false,"room":"r","reset":true}` {
		t.Errorf("ChunkFrame %s", f)
	}
	if f := string(ErrorFrame(room, "cancelled")); f != `{"type":"ai-error","job":"j2","error":"cancelled","room":"r"}` {
		t.Errorf("ErrorFrame %s", f)
	}
}
