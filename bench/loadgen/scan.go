package loadgen

import (
	"bytes"
	"strconv"
)

// The node's replies are flat JSON objects written by one encoder, and the
// loader reads hundreds of thousands of them a second on one core, so the
// hot fields are found by scanning for their keys instead of decoding. The
// keys below never occur inside the data values the loader publishes.
var (
	keyType   = []byte(`"type"`)
	keyOffset = []byte(`"offset"`)
	keyTS     = []byte(`"ts"`)
	keySeq    = []byte(`"seq"`)
	keyDone   = []byte(`"done"`)
	keyCode   = []byte(`"code"`)
)

// valueAt returns the bytes after `key:` (spaces skipped), or nil.
func valueAt(b, key []byte) []byte {
	i := bytes.Index(b, key)
	if i < 0 {
		return nil
	}
	b = bytes.TrimLeft(b[i+len(key):], " ")
	if len(b) == 0 || b[0] != ':' {
		return nil
	}
	return bytes.TrimLeft(b[1:], " ")
}

// jsonString returns the string value of key without unescaping (the
// fields read this way are identifiers), or nil.
func jsonString(b, key []byte) []byte {
	v := valueAt(b, key)
	if len(v) == 0 || v[0] != '"' {
		return nil
	}
	end := bytes.IndexByte(v[1:], '"')
	if end < 0 {
		return nil
	}
	return v[1 : 1+end]
}

// jsonInt returns the integer value of key.
func jsonInt(b, key []byte) (int64, bool) {
	v := valueAt(b, key)
	n := 0
	for n < len(v) && (v[n] == '-' || v[n] >= '0' && v[n] <= '9') {
		n++
	}
	x, err := strconv.ParseInt(string(v[:n]), 10, 64) // no allocation: the conversion does not escape
	return x, err == nil
}

// jsonTrue reports whether key's value is the literal true.
func jsonTrue(b, key []byte) bool {
	return bytes.HasPrefix(valueAt(b, key), []byte("true"))
}

// minStampSize is the size of a stamp with the longest timestamp and
// sequence and an empty pad.
const minStampSize = len(`{"ts":1000000000000000000,"seq":1000000000000,"pad":""}`)

// appendStamp appends a JSON object of exactly size bytes (size >=
// minStampSize) carrying the send time in unix nanoseconds and a sequence
// number; receivers compute latency from "ts".
func appendStamp(dst []byte, ts, seq int64, size int) []byte {
	start := len(dst)
	dst = append(dst, `{"ts":`...)
	dst = strconv.AppendInt(dst, ts, 10)
	dst = append(dst, `,"seq":`...)
	dst = strconv.AppendInt(dst, seq, 10)
	dst = append(dst, `,"pad":"`...)
	for pad := size - (len(dst) - start) - len(`"}`); pad > 0; pad-- {
		dst = append(dst, 'x')
	}
	return append(dst, `"}`...)
}
