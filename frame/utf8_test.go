package frame

import (
	"testing"
	"unicode/utf8"
)

func TestValidPrefix(t *testing.T) {
	for _, test := range []struct {
		in string
		n  int
		ok bool
	}{
		{
			in: "",
			n:  0,
			ok: true,
		},
		{
			in: "abc€",
			n:  6,
			ok: true,
		},
		{
			in: "a\xe2",
			n:  1,
			ok: true,
		},
		{
			in: "a\xe2\x82",
			n:  1,
			ok: true,
		},
		{
			in: "\xf0\x9d\x84",
			n:  0,
			ok: true,
		},
		{
			in: "a\xff",
		},
		{
			in: "\xff\xe2",
		},
		{
			in: "a\x82",
		},
		{
			in: "\x80\x80\x80",
		},
		{
			in: "\xe2\x82\xac\x80",
		},
		{
			in: "a\xed\xa0", // surrogate
		},
		{
			in: "a\xe0\x80", // overlong
		},
		{
			in: "a\xf4\x90", // over U+10FFFF
		},
		{
			in: "a\xc0", // never valid
		},
		{
			in: "a\xf5",
		},
	} {
		n, ok := validPrefix([]byte(test.in))
		if n != test.n || ok != test.ok {
			t.Errorf(
				"validPrefix(%q) = %d, %v; want %d, %v",
				test.in, n, ok, test.n, test.ok,
			)
		}
	}
}

// completable is the reference for validPrefix: b is the start of valid UTF-8
// if some continuation of up to 3 bytes makes it valid, with the valid part
// found by brute force rather than by looking for a rune start.
func completable(b []byte) (n int, ok bool) {
	// Every accept range of a continuation byte is bounded by these.
	cands := []byte{0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf}
	var try func(tail []byte, k int) bool
	try = func(tail []byte, k int) bool {
		if utf8.Valid(tail) {
			return true
		}
		if k == 0 {
			return false
		}
		for _, c := range cands {
			if try(append(tail[:len(tail):len(tail)], c), k-1) {
				return true
			}
		}
		return false
	}
	for t := 0; t <= 3 && t <= len(b); t++ {
		head, tail := b[:len(b)-t], b[len(b)-t:]
		if !utf8.Valid(head) {
			continue
		}
		if t == 0 || (!utf8.Valid(tail) && try(tail, 3)) {
			return len(head), true
		}
	}
	return 0, false
}

func FuzzValidPrefix(f *testing.F) {
	for _, s := range []string{"", "a", "a\xe2", "€", "\xf0\x9d\x84", "\xed\xa0", "\xff"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		n, ok := validPrefix(b)
		wn, wok := completable(b)
		if n != wn || ok != wok {
			t.Fatalf(
				"validPrefix(%q) = %d, %v; want %d, %v",
				b, n, ok, wn, wok,
			)
		}
	})
}
