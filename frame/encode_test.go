package frame

import (
	"bytes"
	"strings"
	"testing"

	"github.com/gobwas/ws"
)

func TestHeaderLen(t *testing.T) {
	for _, test := range []struct {
		n    int
		want int
	}{
		{
			n:    0,
			want: 2,
		},
		{
			n:    125,
			want: 2,
		},
		{
			n:    126,
			want: 4,
		},
		{
			n:    65535,
			want: 4,
		},
		{
			n:    65536,
			want: 10,
		},
		{
			n:    1 << 40,
			want: 10,
		},
	} {
		if got := HeaderLen(test.n); got != test.want {
			t.Errorf(
				"HeaderLen(%d) = %d; want %d",
				test.n, got, test.want,
			)
		}
		h := ws.Header{
			Fin:    true,
			Length: int64(test.n),
		}
		if got := ws.HeaderSize(h); got != test.want {
			t.Errorf(
				"ws.HeaderSize(%d) = %d; want %d",
				test.n, got, test.want,
			)
		}
	}
}

// TestAppendFrame checks AppendFrame and New against ws.ReadFrame.
func TestAppendFrame(t *testing.T) {
	for _, n := range []int{0, 1, 125, 126, 65535, 65536, 70000} {
		payload := bytes.Repeat([]byte{'z'}, n)
		prefix := []byte("prefix")
		for name, f := range map[string][]byte{
			"AppendFrame": AppendFrame(bytes.Clone(prefix), ws.OpBinary, payload),
			"New":         append(bytes.Clone(prefix), New(ws.OpBinary, payload)...),
		} {
			if !bytes.HasPrefix(f, prefix) {
				t.Fatalf(
					"%s(%d): dst prefix lost",
					name, n,
				)
			}
			got, err := ws.ReadFrame(bytes.NewReader(f[len(prefix):]))
			if err != nil {
				t.Fatalf(
					"%s(%d): ws.ReadFrame() error: %v",
					name, n, err,
				)
			}
			want := ws.Header{
				Fin:    true,
				OpCode: ws.OpBinary,
				Length: int64(n),
			}
			if got.Header != want || !bytes.Equal(got.Payload, payload) {
				t.Fatalf(
					"%s(%d): header %+v; want %+v",
					name, n, got.Header, want,
				)
			}
			if len(f)-len(prefix) != HeaderLen(n)+n {
				t.Fatalf(
					"%s(%d): %d bytes; want %d",
					name, n, len(f)-len(prefix), HeaderLen(n)+n,
				)
			}
		}
		if f := New(ws.OpText, payload); cap(f) != len(f) {
			t.Fatalf(
				"New(%d): cap %d, len %d",
				n, cap(f), len(f),
			)
		}
	}
	// The compiled frames of ws are the same bytes.
	if got := New(ws.OpPing, nil); !bytes.Equal(got, ws.CompiledPing) {
		t.Fatalf(
			"New(OpPing, nil) = %x; want %x",
			got, ws.CompiledPing,
		)
	}
}

// TestAppendMasked checks AppendMasked against ws.ReadFrame and Parser.
func TestAppendMasked(t *testing.T) {
	for _, n := range []int{0, 3, 125, 126, 65535, 65536} {
		payload := []byte(strings.Repeat("m", n))
		f := AppendMasked(nil, ws.OpText, false, payload, testMask)
		if string(payload) != strings.Repeat("m", n) {
			t.Fatalf(
				"AppendMasked(%d) modified payload",
				n,
			)
		}
		got, err := ws.ReadFrame(bytes.NewReader(f))
		if err != nil {
			t.Fatal(err)
		}
		want := ws.Header{
			OpCode: ws.OpText,
			Masked: true,
			Mask:   testMask,
			Length: int64(n),
		}
		if got.Header != want {
			t.Fatalf(
				"AppendMasked(%d): header %+v; want %+v",
				n, got.Header, want,
			)
		}
		ws.Cipher(got.Payload, got.Header.Mask, 0)
		if !bytes.Equal(got.Payload, payload) {
			t.Fatalf(
				"AppendMasked(%d): payload unmasks wrong",
				n,
			)
		}
	}
}

func TestNewClose(t *testing.T) {
	long := strings.Repeat("a", 122) + "€" // 125 bytes
	for _, test := range []struct {
		name   string
		code   ws.StatusCode
		reason string
		frame  []byte // if not nil
		want   string // reason read back
	}{
		{
			name:  "no code",
			code:  0,
			frame: []byte{0x88, 0},
		},
		{
			name:  "code only",
			code:  ws.StatusNormalClosure,
			frame: []byte{0x88, 2, 0x03, 0xe8},
		},
		{
			name:   "code and reason",
			code:   ws.StatusGoingAway,
			reason: "bye",
			want:   "bye",
		},
		{
			name:   "reason of 123 bytes",
			code:   ws.StatusPolicyViolation,
			reason: strings.Repeat("a", 120) + "€",
			want:   strings.Repeat("a", 120) + "€",
		},
		{
			name:   "reason cut at a rune",
			code:   ws.StatusPolicyViolation,
			reason: long,
			want:   long[:122],
		},
	} {
		t.Run(test.name, func(t *testing.T) {
			f := NewClose(test.code, test.reason)
			if test.frame != nil && !bytes.Equal(f, test.frame) {
				t.Fatalf(
					"NewClose() = %x; want %x",
					f, test.frame,
				)
			}
			if cap(f) != len(f) {
				t.Fatalf(
					"NewClose(): cap %d, len %d",
					cap(f), len(f),
				)
			}
			fr, err := ws.ReadFrame(bytes.NewReader(f))
			if err != nil {
				t.Fatal(err)
			}
			code, reason := ParseClose(fr.Payload)
			wantCode := test.code
			if wantCode == 0 {
				wantCode = ws.StatusNoStatusRcvd
			}
			if code != wantCode || reason != test.want {
				t.Fatalf(
					"ParseClose() = %d, %q; want %d, %q",
					code, reason, wantCode, test.want,
				)
			}
			// What the server sends, its peer accepts: echo it masked.
			stream := AppendMasked(nil, ws.OpClose, true, fr.Payload, testMask)
			_, err = feedChunks(t, stream, 0)
			if err != nil {
				t.Fatalf(
					"Feed(echo) error: %v",
					err,
				)
			}
		})
	}
}

func TestParseClose(t *testing.T) {
	code, reason := ParseClose(nil)
	if code != ws.StatusNoStatusRcvd || reason != "" {
		t.Fatalf(
			"ParseClose(nil) = %d, %q",
			code, reason,
		)
	}
	p := []byte(closePayload(4000, "app"))
	code, reason = ParseClose(p)
	p[2] = 'X' // the reason is a copy
	if code != 4000 || reason != "app" {
		t.Fatalf(
			"ParseClose() = %d, %q",
			code, reason,
		)
	}
}
