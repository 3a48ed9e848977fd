package tuning

import "errors"

var (
	// ErrAbsent is returned by Host.Sysctl for a key the kernel does not
	// have (e.g. net.netfilter.* while conntrack is not loaded).
	ErrAbsent = errors.New("no such sysctl on this kernel")
	// ErrProfile is wrapped by ParseProfile for a profile file it cannot
	// read: a setting without a "check:" line, a field count that does not
	// match, an unknown word.
	ErrProfile = errors.New("bad profile")
)
