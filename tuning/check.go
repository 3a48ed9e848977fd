package tuning

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// What a node costs per connection besides the sysctls, for the memory and
// open-file lines of a Report.
const (
	// FileReserve is the files a node opens besides its connections
	// (listener, epoll and eventfd, the internal listener, Redis
	// connections, logs), with headroom: a node with an open-file limit L
	// holds L - FileReserve connections.
	FileReserve = 100
	// KernelBytesPerConn is the kernel memory of one idle socket (tcp_sock,
	// inode, file, dentry, epoll item): 9,000 loopback pairs on Linux 6.18
	// added 3,953 B per socket to /proc/meminfo's Slab.
	KernelBytesPerConn = 3953
	// BufferBytesPerConn is the TCP buffer memory of a busy connection: a
	// socket with unread or unsent data is charged one page (measured:
	// 9,000 sockets with 100 unread bytes each added 8,704 pages to
	// /proc/net/sockstat's TCP mem), one for each direction.
	BufferBytesPerConn = 2 * 4096
	// NodeBytesPerConn is a node's RSS per idle connection in a room: the
	// highest of the eight idle runs behind the README's figure (median
	// 2,755 B, slope 5,000-18,000), as sizing should not count on the median.
	NodeBytesPerConn = 2830
)

// Status is the outcome of one line of a Report.
type Status string

// Statuses.
const (
	OK      Status = "ok"
	TooLow  Status = "too low"
	TooHigh Status = "too high"
	Differs Status = "differs"
	Absent  Status = "absent"  // the kernel has no such setting: nothing to check
	Unknown Status = "unknown" // it could not be read
)

// Item is one line of a Report.
type Item struct {
	Name    string
	Current string
	Wanted  string
	Status  Status
	Hold    bool   // below it the host cannot hold the connections
	Allows  int    // connections the current value is enough for; -1: no bound
	Bound   string // why it allows no more, in words, for the verdict
	Fix     string // what to do when Status is not OK
}

// Report is the outcome of Check.
type Report struct {
	Conns    int // the target: connections per node process
	SizedFor int // the profile's sizing
	Items    []Item
	// Allowed is the connections this host can hold per node process: the
	// smallest bound of the hold items (-1 when none bounds it); Bound is
	// that item.
	Allowed int
	Bound   *Item
	// Memory the target needs, in bytes.
	KernelBytes, BufferBytes, NodeBytes uint64
}

// Holds reports whether the host can hold the target: every hold item is
// ok (or absent from the kernel).
func (r Report) Holds() bool {
	for _, it := range r.Items {
		if it.Hold && it.Status != OK && it.Status != Absent {
			return false
		}
	}
	return true
}

// Check compares host with profile p for conns connections per node
// process. It only reads the host (LocalHost probes whether the open-file
// limit could be raised by raising it and putting it back).
func Check(p Profile, host Host, conns int) Report {
	r := Report{Conns: conns, SizedFor: p.SizedFor, Allowed: -1}
	for _, s := range p.Settings {
		r.Items = append(r.Items, checkSetting(p, s, host, conns))
	}
	r.Items = append(r.Items, checkFiles(host, conns), r.checkMemory(host))
	for i := range r.Items {
		it := &r.Items[i]
		if it.Hold && it.Allows >= 0 && (r.Allowed < 0 || it.Allows < r.Allowed) {
			r.Allowed, r.Bound = it.Allows, it
		}
	}
	return r
}

func checkSetting(p Profile, s Setting, host Host, conns int) Item {
	it := Item{Name: s.Key, Hold: s.Hold, Allows: -1, Status: OK,
		Fix: "scripts/apply-tuning.sh (or: sysctl -w " + s.Key + "=...)"}
	wanted := make([]string, len(s.Values))
	for i, op := range s.Ops {
		switch op {
		case Skip:
			wanted[i] = "-"
		case Scales:
			wanted[i] = ">=" + strconv.FormatInt(p.Wanted(s, i, conns), 10)
		default:
			wanted[i] = string(op) + strconv.FormatInt(s.Values[i], 10)
		}
	}
	it.Wanted = strings.Join(wanted, " ")
	raw, err := host.Sysctl(s.Key)
	if errors.Is(err, ErrAbsent) {
		it.Status, it.Current, it.Fix = Absent, "(not in this kernel)", ""
		return it
	}
	cur := strings.Fields(raw)
	if err != nil || len(cur) != len(s.Values) {
		it.Status, it.Current = Unknown, fmt.Sprintf("cannot read: %v %q", err, raw)
		return it
	}
	it.Current = strings.Join(cur, " ")
	for i, op := range s.Ops {
		v, err := strconv.ParseInt(cur[i], 10, 64)
		if err != nil {
			it.Status = Unknown
			return it
		}
		want := p.Wanted(s, i, conns)
		if st := compare(op, v, want); st != OK && it.Status == OK {
			it.Status = st
		}
		if a := p.Allows(s, i, v); a >= 0 && (it.Allows < 0 || a < it.Allows) {
			it.Allows = a
			it.Bound = fmt.Sprintf("%s is %d where the profile has %d for %s connections", s.Key, v, s.Values[i], count(p.SizedFor))
		}
	}
	return it
}

func compare(op Op, cur, want int64) Status {
	switch {
	case (op == AtLeast || op == Scales) && cur < want:
		return TooLow
	case op == AtMost && cur > want:
		return TooHigh
	case op == Equal && cur != want:
		return Differs
	}
	return OK
}

// checkFiles: every connection is an open file. The hard limit is what
// counts: Go raises a process's soft limit to its hard one at start, the
// node included.
func checkFiles(host Host, conns int) Item {
	it := Item{Name: "open files per process (RLIMIT_NOFILE)", Hold: true, Allows: -1,
		Wanted: fmt.Sprintf(">=%d (+%d own)", FilesNeeded(conns), FileReserve)}
	soft, hard, err := host.OpenFileLimit()
	if err != nil {
		it.Status, it.Current = Unknown, err.Error()
		return it
	}
	it.Current = fmt.Sprintf("%d (soft %d, hard %d)", hard, soft, hard)
	it.Allows = ConnsAllowed(hard)
	it.Bound = fmt.Sprintf("the open-file limit is %s per process (hard limit), %d of them the node's own files", count(int(min(hard, 1<<31))), FileReserve)
	it.Status = compare(AtLeast, int64(min(hard, 1<<62)), int64(FilesNeeded(conns)))
	it.Fix = "LimitNOFILE=1048576 in the unit (tuning/systemd), nofile in /etc/security/limits.d (tuning/limits.d), `ulimit -n` in a shell, --ulimit nofile= for a container"
	if rh, ok := host.(interface{ CanRaiseFileLimit(uint64) error }); ok && it.Status != OK {
		if err := rh.CanRaiseFileLimit(FilesNeeded(conns)); err != nil {
			it.Bound += fmt.Sprintf(", and it cannot be raised here (setrlimit: %v)", err)
			it.Fix = "it cannot be raised from inside this process: the service manager or container that starts the node must (" + it.Fix + ")"
		}
	}
	return it
}

func (r *Report) checkMemory(host Host) Item {
	n := uint64(r.Conns)
	r.KernelBytes, r.BufferBytes, r.NodeBytes = n*KernelBytesPerConn, n*BufferBytesPerConn, n*NodeBytesPerConn
	perConn := uint64(KernelBytesPerConn + BufferBytesPerConn + NodeBytesPerConn)
	it := Item{Name: "memory (MemTotal)", Hold: true, Allows: -1,
		Wanted: ">=" + bytesIEC(n*perConn), Fix: "a host with more memory, or fewer connections per host"}
	total, err := host.MemTotal()
	if err != nil {
		it.Status, it.Current = Unknown, err.Error()
		return it
	}
	it.Current = bytesIEC(total)
	it.Allows = int(total / perConn)
	it.Bound = fmt.Sprintf("the host has %s, %d B per connection", bytesIEC(total), perConn)
	it.Status = compare(AtLeast, int64(total), int64(n*perConn))
	return it
}

// FilesNeeded is the open-file limit a node needs for conns connections.
func FilesNeeded(conns int) uint64 { return uint64(conns) + FileReserve }

// ConnsAllowed is the connections a node holds with an open-file limit of
// limit.
func ConnsAllowed(limit uint64) int {
	if limit <= FileReserve {
		return 0
	}
	return int(min(limit-FileReserve, 1<<31))
}

func bytesIEC(b uint64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20))
	}
	return fmt.Sprintf("%d KiB", b>>10)
}
