package tuning

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// Host is what Check reads of a machine.
type Host interface {
	// Sysctl is the value of key as /proc/sys shows it ("4096\t131072"),
	// or ErrAbsent.
	Sysctl(key string) (string, error)
	// OpenFileLimit is this process's RLIMIT_NOFILE.
	OpenFileLimit() (soft, hard uint64, err error)
	// MemTotal is the host's memory in bytes.
	MemTotal() (uint64, error)
}

// LocalHost is the machine this process runs on.
func LocalHost() Host { return localHost{} }

type localHost struct{}

func (localHost) Sysctl(key string) (string, error) {
	b, err := os.ReadFile("/proc/sys/" + strings.ReplaceAll(key, ".", "/"))
	if errors.Is(err, fs.ErrNotExist) {
		return "", ErrAbsent
	}
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

func (localHost) OpenFileLimit() (soft, hard uint64, err error) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0, 0, fmt.Errorf("cannot read RLIMIT_NOFILE: %w", err)
	}
	return l.Cur, l.Max, nil
}

func (localHost) MemTotal() (uint64, error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("cannot read MemTotal %q: %w", v, err)
			}
			return kb << 10, nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("no MemTotal in /proc/meminfo")
}

// CanRaiseFileLimit tells whether this process may raise its hard
// open-file limit to n, by doing it and putting the old limit back
// (lowering is always allowed). Raising needs CAP_SYS_RESOURCE, and n at
// most fs.nr_open.
func (localHost) CanRaiseFileLimit(n uint64) error {
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		return err
	}
	if old.Max >= n {
		return nil
	}
	up := syscall.Rlimit{Cur: old.Cur, Max: n}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &up); err != nil {
		return err
	}
	return syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old)
}
