package loadgen

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// userHZ is the unit of the CPU times in /proc/PID/stat. Linux fixes it at
// 100 for user space whatever the kernel's own HZ, so it is not read from
// sysconf (which would need cgo).
const userHZ = 100

// procSample is what the loader reads of one process.
type procSample struct {
	RSS int64         // resident set, bytes (VmRSS)
	CPU time.Duration // user + system time since the process started
}

// readProc reads /proc/<pid> ("self" for pid 0).
func readProc(pid int) (procSample, error) {
	dir := "/proc/self"
	if pid != 0 {
		dir = "/proc/" + strconv.Itoa(pid)
	}
	var s procSample
	stat, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return s, err
	}
	// The command name (field 2) may hold spaces and parentheses; the
	// numeric fields start after its last ')'. utime and stime are fields
	// 14 and 15, i.e. 11 and 12 after the state field (3).
	i := bytes.LastIndexByte(stat, ')')
	f := strings.Fields(string(stat[i+1:]))
	if i < 0 || len(f) < 13 {
		return s, fmt.Errorf("%s/stat: unexpected format", dir)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return s, fmt.Errorf("%s/stat: bad cpu times", dir)
	}
	s.CPU = time.Duration(ut+st) * time.Second / userHZ

	status, err := os.Open(dir + "/status")
	if err != nil {
		return s, err
	}
	defer status.Close()
	sc := bufio.NewScanner(status)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return s, fmt.Errorf("%s/status: bad VmRSS %q", dir, v)
			}
			s.RSS = kb << 10
		}
	}
	return s, sc.Err()
}

// readProcs sums readProc over pids (0 is this process); a process that
// cannot be read counts as zero and its error is returned.
func readProcs(pids []int) (procSample, error) {
	var sum procSample
	var first error
	for _, pid := range pids {
		s, err := readProc(pid)
		if err != nil && first == nil {
			first = err
		}
		sum.RSS += s.RSS
		sum.CPU += s.CPU
	}
	return sum, first
}

// cpuMeter measures processes' CPU use over an interval as a fraction of
// the cores they may run on.
type cpuMeter struct {
	pids  []int
	cores int
	t0    time.Time
	cpu0  time.Duration
}

func startCPU(pids []int, cores int) cpuMeter {
	s, _ := readProcs(pids) // a missing process reads as zero use
	return cpuMeter{pids: pids, cores: cores, t0: time.Now(), cpu0: s.CPU}
}

// stop returns the CPU time used since start and its share of the cores.
func (m cpuMeter) stop() (used time.Duration, share float64) {
	s, _ := readProcs(m.pids)
	used = s.CPU - m.cpu0
	wall := time.Since(m.t0)
	if wall <= 0 || m.cores == 0 {
		return used, 0
	}
	return used, float64(used) / float64(wall) / float64(m.cores)
}

// selfCores is the number of CPUs this process may run on (taskset).
func selfCores() int {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return 1
	}
	return set.Count()
}

// RaiseNoFile lifts the open-file soft limit to the hard limit, since every
// connection is a file; it returns the new limit.
func RaiseNoFile() (uint64, error) {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		return 0, err
	}
	rl.Cur = rl.Max
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		return 0, err
	}
	return rl.Cur, nil
}
