package loadgen

import (
	"context"
	"os"
	"runtime"
	"strings"
	"time"
)

// Run performs one scenario against the node at cfg.URL and returns what it
// measured. It returns an error only for a bad Config; failures of the node
// are counted in the Summary. Every connection is closed before it returns.
func Run(ctx context.Context, cfg Config) (Summary, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return Summary{}, err
	}
	s := newSession(cfg)
	stop := s.startProgress(cfg.Progress)
	var sum Summary
	switch cfg.Scenario {
	case "idle":
		sum = s.runIdle(ctx)
	case "fanout":
		sum = s.runFanout(ctx)
	case "rooms":
		sum = s.runRooms(ctx)
	case "storm":
		sum = s.runStorm(ctx)
	case "ai":
		sum = s.runAI(ctx)
	case "publish":
		sum = s.runPublish(ctx)
	}
	s.phase.Store("close")
	s.closeAll()
	stop()
	s.finish(&sum)
	return sum, nil
}

// Result is one recorded run, the form kept in bench/results/.
type Result struct {
	Command []string `json:"command"`
	Date    string   `json:"date"` // RFC 3339, UTC
	Machine Machine  `json:"machine"`
	Config  Config   `json:"config"`
	Summary Summary  `json:"summary"`
}

// Machine identifies where a run was made.
type Machine struct {
	Cores     int    `json:"cores"`
	CPU       string `json:"cpu,omitempty"`
	Kernel    string `json:"kernel"`
	Go        string `json:"go"`
	MemTotal  string `json:"memTotal,omitempty"`
	LoaderCPU int    `json:"loaderCpus"` // CPUs the loader was allowed (taskset)
}

// NewResult wraps a summary with the command, the date and the machine.
func NewResult(cfg Config, sum Summary, command []string) Result {
	return Result{
		Command: command,
		Date:    time.Now().UTC().Format(time.RFC3339),
		Machine: ThisMachine(),
		Config:  cfg.withDefaults(),
		Summary: sum,
	}
}

// ThisMachine describes the machine the loader runs on.
func ThisMachine() Machine {
	m := Machine{Cores: runtime.NumCPU(), Go: runtime.Version(), LoaderCPU: selfCores()}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	m.CPU = procField("/proc/cpuinfo", "model name")
	m.MemTotal = procField("/proc/meminfo", "MemTotal")
	return m
}

// procField returns the value of the first "key: value" line of a /proc file.
func procField(path, key string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	for line := range strings.Lines(string(b)) {
		k, v, ok := strings.Cut(line, ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
