package tuning

import (
	"bufio"
	"bytes"
	"embed"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Files holds the profile as shipped: sysctl.d/99-edgehub.conf,
// limits.d/99-edgehub.conf, systemd/edgehub.service and
// systemd/edgehub-worker.service.
//
//go:embed sysctl.d/99-edgehub.conf limits.d/99-edgehub.conf systemd/edgehub.service systemd/edgehub-worker.service
var Files embed.FS

// SysctlFile is the profile's sysctl file inside Files.
const SysctlFile = "sysctl.d/99-edgehub.conf"

// Op is how one field of a setting is checked (the words of a "check:" line).
type Op string

// The ops of a "check:" line.
const (
	AtLeast Op = ">=" // the host needs at least the profile's value
	AtMost  Op = "<=" // the host needs at most the profile's value
	Equal   Op = "="  // the host needs exactly the profile's value
	Scales  Op = "*"  // N connections need value * N / SizedFor
	Skip    Op = "-"  // not checked
)

// Setting is one sysctl of the profile.
type Setting struct {
	Key    string  // net.core.somaxconn
	Values []int64 // the value's fields as written, sized for Profile.SizedFor
	Ops    []Op    // one per field
	// Hold: a host below this setting cannot hold the connections at all
	// (rather than holding them badly in a storm or a failure).
	Hold bool
	Line int // in the file, for messages
}

// Profile is the parsed sysctl file.
type Profile struct {
	SizedFor int // connections the values were sized for ("# sized-for: N")
	Settings []Setting
}

// DefaultProfile is the embedded sysctl file, parsed. Its test proves it
// parses, so an error here is a build defect.
func DefaultProfile() Profile {
	b, err := Files.ReadFile(SysctlFile)
	if err != nil {
		panic(err)
	}
	p, err := ParseProfile(bytes.NewReader(b))
	if err != nil {
		panic(err)
	}
	return p
}

// ParseProfile reads a sysctl.d file in the profile's format: every
// "key = value" line comes right after its "# check: OPS... hold|advise"
// comment line, and one "# sized-for: N" line names the connection count.
func ParseProfile(r io.Reader) (Profile, error) {
	var (
		p       Profile
		pending []string // the words of the last "check:" line not yet used
		lineNo  int
	)
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		lineNo++
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "":
		case strings.HasPrefix(line, "#"):
			body := strings.TrimSpace(strings.TrimPrefix(line, "#"))
			if v, ok := strings.CutPrefix(body, "sized-for:"); ok {
				n, err := strconv.Atoi(strings.TrimSpace(v))
				if err != nil || n <= 0 {
					return p, fmt.Errorf("%w: line %d: sized-for %q is not a positive count", ErrProfile, lineNo, v)
				}
				p.SizedFor = n
			} else if v, ok := strings.CutPrefix(body, "check:"); ok {
				pending = strings.Fields(v)
			}
		default:
			s, err := parseSetting(line, pending, lineNo)
			if err != nil {
				return p, err
			}
			p.Settings = append(p.Settings, s)
			pending = nil
		}
	}
	if err := sc.Err(); err != nil {
		return p, err
	}
	if p.SizedFor == 0 {
		return p, fmt.Errorf("%w: no \"# sized-for: N\" line", ErrProfile)
	}
	return p, nil
}

func parseSetting(line string, check []string, lineNo int) (Setting, error) {
	key, value, ok := strings.Cut(line, "=")
	if !ok {
		return Setting{}, fmt.Errorf("%w: line %d: not key = value: %q", ErrProfile, lineNo, line)
	}
	s := Setting{Key: strings.TrimSpace(key), Line: lineNo}
	for _, f := range strings.Fields(value) {
		v, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return s, fmt.Errorf("%w: line %d: %s: %q is not an integer", ErrProfile, lineNo, s.Key, f)
		}
		s.Values = append(s.Values, v)
	}
	if len(check) != len(s.Values)+1 {
		return s, fmt.Errorf("%w: line %d: %s has %d fields and needs a \"# check:\" line above it with one op per field and hold or advise",
			ErrProfile, lineNo, s.Key, len(s.Values))
	}
	for _, w := range check[:len(s.Values)] {
		switch op := Op(w); op {
		case AtLeast, AtMost, Equal, Scales, Skip:
			s.Ops = append(s.Ops, op)
		default:
			return s, fmt.Errorf("%w: line %d: %s: unknown op %q", ErrProfile, lineNo, s.Key, w)
		}
	}
	switch check[len(s.Values)] {
	case "hold":
		s.Hold = true
	case "advise":
	default:
		return s, fmt.Errorf("%w: line %d: %s: the check line ends with hold or advise, not %q", ErrProfile, lineNo, s.Key, check[len(s.Values)])
	}
	return s, nil
}

// Wanted is the value field i must meet for conns connections: the
// profile's value, scaled for a Scales field (rounded up).
func (p Profile) Wanted(s Setting, i, conns int) int64 {
	if s.Ops[i] != Scales {
		return s.Values[i]
	}
	return (s.Values[i]*int64(conns) + int64(p.SizedFor) - 1) / int64(p.SizedFor)
}

// Allows is how many connections the value cur of field i is enough for:
// the inverse of Wanted for a Scales field; -1 (no bound) for the others.
func (p Profile) Allows(s Setting, i int, cur int64) int {
	if s.Ops[i] != Scales || s.Values[i] <= 0 {
		return -1
	}
	return int(cur * int64(p.SizedFor) / s.Values[i])
}
