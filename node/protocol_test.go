package node

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestDecode(t *testing.T) {
	t.Parallel()
	tcs := []struct {
		name, msg      string
		err            error
		typ, id, room  string
		idNil, roomNil bool
	}{
		{name: "publish", msg: `{"type":"publish","room":"r1","data":{"a":1},"id":"p1"}`, typ: "publish", id: `"p1"`, room: "r1"},
		{name: "numeric id kept raw", msg: `{"type":"ping","id":42}`, typ: "ping", id: `42`, roomNil: true},
		{name: "escaped id kept raw", msg: `{"id":"a\"b","type":"ping"}`, typ: "ping", id: `"a\"b"`, roomNil: true},
		{name: "escaped type and room", msg: `{"type":"jo\u0069n","room":"caf\u00e9"}`, typ: "join", room: "café", idNil: true},
		{name: "whitespace", msg: " \n{ \"type\" : \"ping\" } ", typ: "ping", idNil: true, roomNil: true},
		{name: "not JSON", msg: `hello`, err: errNotObject},
		{name: "truncated", msg: `{"type":"ping"`, err: errNotObject},
		{name: "array", msg: `[{"type":"ping"}]`, err: errNotObject},
		{name: "string", msg: `"ping"`, err: errNotObject},
		{name: "no type", msg: `{"room":"r"}`, err: errNoType},
		{name: "type not a string", msg: `{"type":7}`, err: errNoType},
		{name: "room not a string", msg: `{"type":"join","room":["r"]}`, err: errRoomType},
		{name: "empty room", msg: `{"type":"join","room":""}`, err: errRoomName},
		{name: "room with a brace", msg: `{"type":"join","room":"a{b}"}`, err: errRoomName},
		{name: "room with a space", msg: `{"type":"join","room":"a b"}`, err: errRoomName},
		{name: "room with a star", msg: `{"type":"join","room":"a*"}`, err: errRoomName},
		{name: "room too long", msg: `{"type":"join","room":"` + strings.Repeat("x", 129) + `"}`, err: errRoomName},
		{name: "longest room", msg: `{"type":"join","room":"` + strings.Repeat("x", 128) + `"}`, typ: "join", room: strings.Repeat("x", 128), idNil: true},
	}
	for _, tc := range tcs {
		var r request
		err := decode([]byte(tc.msg), &r)
		if err != tc.err {
			t.Fatalf("%s: err = %v, want %v", tc.name, err, tc.err)
		}
		if err != nil {
			continue
		}
		if string(r.typ) != tc.typ || string(r.room) != tc.room || (r.room == nil) != tc.roomNil ||
			string(r.id) != tc.id || (r.id == nil) != tc.idNil {
			t.Fatalf("%s: typ=%q id=%q room=%q", tc.name, r.typ, r.id, r.room)
		}
	}
}

func TestGetFields(t *testing.T) {
	t.Parallel()
	msg := []byte(`{"type":"join","since":{"epoch":"e1","offset":12},"data": [1, {"x":"y"}] ,"seq":-1,"bad":"x","f":1.5}`)
	if raw, ok := getRaw(msg, "data"); !ok || string(raw) != `[1, {"x":"y"}]` {
		t.Fatalf("getRaw data = %q, %v", raw, ok)
	}
	if n, present, ok := getInt(msg, "seq"); !present || !ok || n != -1 {
		t.Fatalf("getInt seq = %d %v %v", n, present, ok)
	}
	if _, present, ok := getInt(msg, "f"); !present || ok {
		t.Fatal("a fraction is not an integer")
	}
	if _, present, ok := getInt(msg, "missing"); present || !ok {
		t.Fatal("a missing field is absent and fine")
	}
	if _, present, ok := getString(msg, "seq"); !present || ok {
		t.Fatal("a number is not a string")
	}
	since, err := parseSince(msg)
	if err != nil || since.Epoch != "e1" || since.Offset != 12 {
		t.Fatalf("parseSince = %+v, %v", since, err)
	}
	for _, bad := range []string{`{"since":{"epoch":"e","offset":-1}}`, `{"since":{"offset":3}}`, `{"since":{"epoch":1,"offset":3}}`, `{"since":"x"}`} {
		if _, err := parseSince([]byte(bad)); err == nil {
			t.Fatalf("parseSince(%s) accepted", bad)
		}
	}
	if s, err := parseSince([]byte(`{"since":null}`)); s != nil || err != nil {
		t.Fatal("since null means none")
	}
}

func TestAppendStringIsValidJSON(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"", "plain", `q"uote\back`, "ctl\x00\x01\x1f\n\r\t", "é€😀", "bad\xffutf8", "\u2028"} {
		b := appendString(nil, s)
		var back string
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("%q encodes to invalid JSON %s: %v", s, b, err)
		}
		if utf8.ValidString(s) && back != s {
			t.Fatalf("%q round-trips to %q", s, back)
		}
	}
}

func TestEncoderFrame(t *testing.T) {
	t.Parallel()
	f := encode(func(e *encoder) {
		e.begin("ack").str("room", "r").uint("offset", 7).bool("ok", true).int("n", -2).raw("data", []byte(`{"a":[1]}`)).id([]byte(`"x"`))
	})
	const want = `{"type":"ack","room":"r","offset":7,"ok":true,"n":-2,"data":{"a":[1]},"id":"x"}`
	if f[0] != 0x81 || int(f[1]) != len(want) || string(f[2:]) != want {
		t.Fatalf("frame = % x %s", f[:2], f[2:])
	}
}

// The publish path decodes without allocating.
func TestDecodePublishDoesNotAllocate(t *testing.T) {
	msg := []byte(`{"type":"publish","room":"room-1","id":"p-1","data":{"text":"hello","ts":1732431000000}}`)
	var r request
	allocs := testing.AllocsPerRun(1000, func() {
		if decode(msg, &r) != nil {
			t.Fatal("decode failed")
		}
		if _, ok := getRaw(r.raw, "data"); !ok {
			t.Fatal("no data")
		}
	})
	if allocs != 0 {
		t.Fatalf("decoding a publish allocated %.1f times; want 0", allocs)
	}
}

var benchMessages = map[string]string{
	"publish":   `{"type":"publish","room":"room-1","id":"p-1","data":{"text":"hello","ts":1732431000000}}`,
	"join":      `{"type":"join","room":"room-1","id":"j-1","since":{"epoch":"3f2a9c0d11e4b7a8","offset":1234}}`,
	"leave":     `{"type":"leave","room":"room-1","id":"l-1"}`,
	"ping":      `{"type":"ping","id":"x"}`,
	"ai-query":  `{"type":"ai-query","message":"what is the capital of France?","model":"small","id":"q"}`,
	"ai-cancel": `{"type":"ai-cancel","job":"6a414ad8c356c2b36f1cc7b783c344a7"}`,
	"ai-resume": `{"type":"ai-resume","job":"6a414ad8c356c2b36f1cc7b783c344a7","seq":3}`,
}

func BenchmarkDecode(b *testing.B) {
	for typ, msg := range benchMessages {
		b.Run(typ, func(b *testing.B) {
			raw := []byte(msg)
			var r request
			b.ReportAllocs()
			b.SetBytes(int64(len(raw)))
			for b.Loop() {
				if err := decode(raw, &r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	for _, m := range benchMessages {
		f.Add([]byte(m))
	}
	for _, m := range []string{`{}`, `{"type":"join","room":"\ud800"}`, `{"type":null}`, `{"type":"x","room":"r","since":{"epoch":"e","offset":1e99}}`, `[]`, `{"id":{"a":[1,2]},"type":"ping"}`} {
		f.Add([]byte(m))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		var r request
		if err := decode(msg, &r); err != nil {
			return
		}
		if !json.Valid(msg) {
			t.Fatalf("accepted invalid JSON %q", msg)
		}
		if r.id != nil && !json.Valid(r.id) {
			t.Fatalf("id %q is not a JSON value (from %q)", r.id, msg)
		}
		if r.room != nil && !validRoom(r.room) {
			t.Fatalf("accepted room %q", r.room)
		}
		// Whatever a client sends, what the node echoes is valid JSON.
		f := encode(func(e *encoder) { e.begin("error").str("room", string(r.room)).str("type", string(r.typ)).id(r.id) })
		if payload := f[2:]; len(f) < 128 && !json.Valid(payload) {
			t.Fatalf("reply %q is not JSON", payload)
		}
		_, _ = parseSince(msg)
		_, _, _ = getInt(msg, "seq")
		_, _, _ = getString(msg, "message")
	})
}
