package tuning

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
)

// fakeHost is a machine described by a table, for checking the verdicts.
type fakeHost struct {
	sysctl     map[string]string
	soft, hard uint64
	mem        uint64
}

func (h fakeHost) Sysctl(key string) (string, error) {
	v, ok := h.sysctl[key]
	if !ok {
		return "", ErrAbsent
	}
	return v, nil
}
func (h fakeHost) OpenFileLimit() (uint64, uint64, error) { return h.soft, h.hard, nil }
func (h fakeHost) MemTotal() (uint64, error)              { return h.mem, nil }

// tunedHost has exactly the profile's values, scaled to conns.
func tunedHost(p Profile, conns int) fakeHost {
	h := fakeHost{sysctl: map[string]string{}, soft: FilesNeeded(conns), hard: FilesNeeded(conns), mem: 64 << 30}
	for _, s := range p.Settings {
		var f []string
		for i := range s.Values {
			f = append(f, fmt.Sprint(p.Wanted(s, i, conns)))
		}
		h.sysctl[s.Key] = strings.Join(f, "\t")
	}
	return h
}

func TestDefaultProfileParses(t *testing.T) {
	p := DefaultProfile()
	if p.SizedFor != 200000 {
		t.Errorf("sized for %d, want 200000", p.SizedFor)
	}
	// The settings the issue names must all be in the profile.
	for _, k := range []string{"fs.file-max", "fs.nr_open", "net.core.somaxconn", "net.ipv4.tcp_max_syn_backlog",
		"net.core.netdev_max_backlog", "net.ipv4.ip_local_port_range", "net.ipv4.tcp_tw_reuse",
		"net.ipv4.tcp_mem", "net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem", "net.ipv4.tcp_keepalive_time"} {
		found := false
		for _, s := range p.Settings {
			found = found || s.Key == k
		}
		if !found {
			t.Errorf("the profile has no %s", k)
		}
	}
}

func TestParseProfileErrors(t *testing.T) {
	tcs := []struct{ name, text string }{
		{"no sized-for", "# check: >= hold\na = 1\n"},
		{"no check line", "# sized-for: 10\na = 1\n"},
		{"ops do not match fields", "# sized-for: 10\n# check: >= hold\na = 1 2\n"},
		{"unknown op", "# sized-for: 10\n# check: ~ hold\na = 1\n"},
		{"no severity", "# sized-for: 10\n# check: >= >=\na = 1\n"},
		{"not a number", "# sized-for: 10\n# check: >= hold\na = x\n"},
		{"not key = value", "# sized-for: 10\n# check: >= hold\na 1\n"},
		{"check line used twice", "# sized-for: 10\n# check: >= hold\na = 1\nb = 1\n"},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseProfile(strings.NewReader(tc.text)); !errors.Is(err, ErrProfile) {
				t.Errorf("err = %v, want ErrProfile", err)
			}
		})
	}
}

func TestWantedAndAllowsScale(t *testing.T) {
	p, err := ParseProfile(strings.NewReader("# sized-for: 200000\n# check: * >= hold\nk = 1000 7\n"))
	if err != nil {
		t.Fatal(err)
	}
	s := p.Settings[0]
	if got := p.Wanted(s, 0, 100000); got != 500 {
		t.Errorf("scaled to half: %d, want 500", got)
	}
	if got := p.Wanted(s, 0, 1); got != 1 {
		t.Errorf("scaled to 1 connection rounds up: %d, want 1", got)
	}
	if got := p.Wanted(s, 1, 1); got != 7 {
		t.Errorf("a >= field does not scale: %d, want 7", got)
	}
	if got := p.Allows(s, 0, 250); got != 50000 {
		t.Errorf("allows(250) = %d, want 50000", got)
	}
	if got := p.Allows(s, 1, 3); got != -1 {
		t.Errorf("a >= field bounds nothing: %d", got)
	}
}

func TestCheckTunedHostHolds(t *testing.T) {
	p := DefaultProfile()
	r := Check(p, tunedHost(p, 100000), 100000)
	if !r.Holds() {
		t.Fatalf("a host with the profile's values does not hold:\n%s", text(t, r))
	}
	for _, it := range r.Items {
		if it.Status != OK {
			t.Errorf("%s: %s (current %s, wanted %s)", it.Name, it.Status, it.Current, it.Wanted)
		}
	}
	if r.Allowed < 100000 {
		t.Errorf("allowed %d < the target", r.Allowed)
	}
	if !strings.Contains(text(t, r), "YES: this host can hold 100,000 connections") {
		t.Errorf("verdict missing:\n%s", text(t, r))
	}
}

func TestCheckVerdicts(t *testing.T) {
	p := DefaultProfile()
	tcs := []struct {
		name    string
		change  func(*fakeHost)
		holds   bool
		status  map[string]Status
		allowed int // -1: do not check
		says    string
	}{
		{
			name:    "open-file limit of this machine",
			change:  func(h *fakeHost) { h.soft, h.hard = 20000, 20000 },
			status:  map[string]Status{"open files per process (RLIMIT_NOFILE)": TooLow},
			allowed: 19900,
			says:    "It allows 19,900: the open-file limit is 20,000 per process (hard limit), 100 of them the node's own files",
		},
		{
			name:    "soft limit below hard is fine: Go raises it",
			change:  func(h *fakeHost) { h.soft = 1024 },
			holds:   true,
			allowed: -1,
		},
		{
			name:    "file-max scaled",
			change:  func(h *fakeHost) { h.sysctl["fs.file-max"] = "52429" },
			status:  map[string]Status{"fs.file-max": TooLow},
			allowed: 10000,
		},
		{
			name:    "tcp_mem: the smallest field bounds",
			change:  func(h *fakeHost) { h.sysctl["net.ipv4.tcp_mem"] = "100000 100000 300000" },
			status:  map[string]Status{"net.ipv4.tcp_mem": TooLow},
			allowed: 50000,
		},
		{
			name:    "advise settings do not fail the host",
			change:  func(h *fakeHost) { h.sysctl["net.core.somaxconn"] = "4096"; h.sysctl["net.ipv4.tcp_tw_reuse"] = "2" },
			holds:   true,
			status:  map[string]Status{"net.core.somaxconn": TooLow, "net.ipv4.tcp_tw_reuse": Differs},
			allowed: -1,
			says:    "Also off the profile",
		},
		{
			name: "at most: keepalive and buffer minimums",
			change: func(h *fakeHost) {
				h.sysctl["net.ipv4.tcp_keepalive_time"] = "7200"
				h.sysctl["net.ipv4.tcp_rmem"] = "8192 1 1"
			},
			holds:   true,
			status:  map[string]Status{"net.ipv4.tcp_keepalive_time": TooHigh, "net.ipv4.tcp_rmem": TooHigh},
			allowed: -1,
		},
		{
			name:    "unchecked fields are ignored",
			change:  func(h *fakeHost) { h.sysctl["net.ipv4.tcp_wmem"] = "4096 1 99999999" },
			holds:   true,
			status:  map[string]Status{"net.ipv4.tcp_wmem": OK},
			allowed: -1,
		},
		{
			name:    "port range must be as wide",
			change:  func(h *fakeHost) { h.sysctl["net.ipv4.ip_local_port_range"] = "32768 60999" },
			holds:   true,
			status:  map[string]Status{"net.ipv4.ip_local_port_range": TooHigh},
			allowed: -1,
		},
		{
			name:    "conntrack not loaded is not a failure",
			change:  func(h *fakeHost) { delete(h.sysctl, "net.netfilter.nf_conntrack_max") },
			holds:   true,
			status:  map[string]Status{"net.netfilter.nf_conntrack_max": Absent},
			allowed: -1,
		},
		{
			name:    "unreadable hold setting fails",
			change:  func(h *fakeHost) { h.sysctl["fs.file-max"] = "1 2" },
			status:  map[string]Status{"fs.file-max": Unknown},
			allowed: -1,
		},
		{
			name:    "memory",
			change:  func(h *fakeHost) { h.mem = 1 << 30 },
			status:  map[string]Status{"memory (MemTotal)": TooLow},
			allowed: (1 << 30) / (KernelBytesPerConn + BufferBytesPerConn + NodeBytesPerConn),
		},
	}
	for _, tc := range tcs {
		t.Run(tc.name, func(t *testing.T) {
			h := tunedHost(p, 100000)
			tc.change(&h)
			r := Check(p, h, 100000)
			out := text(t, r)
			if r.Holds() != tc.holds {
				t.Errorf("holds = %v, want %v:\n%s", r.Holds(), tc.holds, out)
			}
			for _, it := range r.Items {
				if want, ok := tc.status[it.Name]; ok && it.Status != want {
					t.Errorf("%s: %s, want %s", it.Name, it.Status, want)
				}
			}
			if tc.allowed >= 0 && r.Allowed != tc.allowed {
				t.Errorf("allowed %d, want %d", r.Allowed, tc.allowed)
			}
			if tc.says != "" && !strings.Contains(out, tc.says) {
				t.Errorf("output lacks %q:\n%s", tc.says, out)
			}
			if !tc.holds && !strings.Contains(out, "NO: this host cannot hold 100,000") {
				t.Errorf("no NO verdict:\n%s", out)
			}
		})
	}
}

// TestCheckThisHost runs the check on the machine the test runs on: its
// open-file line must be this process's own limit.
func TestCheckThisHost(t *testing.T) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		t.Fatal(err)
	}
	conns := ConnsAllowed(l.Max) + 1
	r := Check(DefaultProfile(), LocalHost(), conns)
	t.Logf("\n%s", text(t, r))
	if r.Holds() {
		t.Errorf("a target one above the open-file limit (%d) holds", l.Max)
	}
	if r.Allowed > ConnsAllowed(l.Max) {
		t.Errorf("allowed %d above the open-file limit's %d", r.Allowed, ConnsAllowed(l.Max))
	}
	var got Item
	for _, it := range r.Items {
		if it.Name == "open files per process (RLIMIT_NOFILE)" {
			got = it
		}
	}
	if got.Status != TooLow || !strings.HasPrefix(got.Current, fmt.Sprint(l.Max)) {
		t.Errorf("open files: %+v, want too low at %d", got, l.Max)
	}
	for _, it := range r.Items {
		if it.Status == Unknown {
			t.Errorf("%s could not be read: %s", it.Name, it.Current)
		}
	}
}

func TestCount(t *testing.T) {
	for n, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 19900: "19,900", 1234567: "1,234,567"} {
		if got := count(n); got != want {
			t.Errorf("count(%d) = %q, want %q", n, got, want)
		}
	}
}

func text(t *testing.T, r Report) string {
	t.Helper()
	var b strings.Builder
	if err := r.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}
