package loadgen

import (
	"encoding/json"
	"testing"
)

func TestScan(t *testing.T) {
	t.Parallel()
	msg := []byte(`{"type":"message","room":"r1","offset":42,"from":"api","data":{"ts":1700000000000000001,"seq":7,"pad":"x"},"done": true}`)
	if got := string(jsonString(msg, keyType)); got != "message" {
		t.Errorf("type = %q", got)
	}
	for _, tc := range []struct {
		key  []byte
		want int64
	}{{keyOffset, 42}, {keyTS, 1700000000000000001}, {keySeq, 7}} {
		if got, ok := jsonInt(msg, tc.key); !ok || got != tc.want {
			t.Errorf("%s = %d, %v; want %d", tc.key, got, ok, tc.want)
		}
	}
	if !jsonTrue(msg, keyDone) {
		t.Error(`"done": true not seen`)
	}
	if _, ok := jsonInt(msg, keyCode); ok {
		t.Error("absent key found")
	}
	if jsonString([]byte(`{"type":5}`), keyType) != nil {
		t.Error("a number read as a string")
	}
}

func TestAppendStamp(t *testing.T) {
	t.Parallel()
	for _, size := range []int{minStampSize, 64, 1000} {
		b := appendStamp([]byte("prefix"), 1700000000123456789, 3, size)[len("prefix"):]
		if len(b) != size {
			t.Errorf("size %d: got %d bytes: %s", size, len(b), b)
		}
		var v struct{ TS, Seq int64 }
		if err := json.Unmarshal(b, &v); err != nil || v.TS != 1700000000123456789 || v.Seq != 3 {
			t.Errorf("size %d: %s decodes to %+v, %v", size, b, v, err)
		}
	}
}

func TestScanDoesNotAllocate(t *testing.T) {
	msg := []byte(`{"type":"message","room":"r1","offset":42,"from":"api","data":{"ts":1700000000000000001,"seq":7,"pad":"x"}}`)
	allocs := testing.AllocsPerRun(100, func() {
		_ = jsonString(msg, keyType)
		_, _ = jsonInt(msg, keyOffset)
		_, _ = jsonInt(msg, keyTS)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per message", allocs)
	}
}
