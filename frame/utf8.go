package frame

import "unicode/utf8"

// validPrefix reports whether b is valid UTF-8 except, possibly, for a rune
// cut short at its end that more bytes could complete. It returns the length
// of b without that partial rune.
//
// It lets a fragmented text message fail at the first fragment that is
// already wrong, while a rune may still span two fragments (RFC 6455 §5.6,
// §8.1).
func validPrefix(b []byte) (n int, ok bool) {
	if utf8.Valid(b) {
		return len(b), true
	}
	// A partial rune is at most utf8.UTFMax-1 bytes long and starts with a
	// leading byte; utf8.FullRune is false exactly when the bytes from
	// there are the valid start of a longer rune.
	for i := len(b) - 1; i >= 0 && i >= len(b)-(utf8.UTFMax-1); i-- {
		if utf8.RuneStart(b[i]) {
			if utf8.FullRune(b[i:]) {
				return 0, false
			}
			if !utf8.Valid(b[:i]) {
				return 0, false
			}
			return i, true
		}
	}
	return 0, false
}
