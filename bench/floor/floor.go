// Package floor measures the kernel's share of a delivery on this machine:
// the CPU one small write(2) to a loopback TCP socket costs the writing
// thread while another CPU reads the other end. No server does a delivery
// for less (edgehub needs one writev per connection per flush), so this is
// the floor under the node's CPU per delivery in the fanout figures.
//
// On loopback the kernel runs the receiver's TCP processing in the
// writer's context unless receive packet steering on lo sends it to
// another CPU; the result records lo's rps_cpus so that the two cases are
// told apart.
package floor

import (
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Config describes one measurement; zero fields take the defaults.
type Config struct {
	Conns     int // socket pairs (both ends live in this process: 2 files each); 5000
	Size      int // bytes per write; 100
	Rounds    int // one write to every socket per round; 5
	WriterCPU int // CPU of the writing thread; 0
	ReaderCPU int // CPU of the reading thread; 1
}

// Result is what Measure found.
type Result struct {
	Config
	// LoRPSCPUs is /sys/class/net/lo/queues/rx-0/rps_cpus during the run.
	LoRPSCPUs string `json:"loRpsCpus"`
	// WriterMicrosPerWrite is the writing thread's CPU per write, one
	// value per round, and their median.
	WriterMicrosPerWrite []float64 `json:"writerMicrosPerWrite"`
	MedianMicrosPerWrite float64   `json:"medianMicrosPerWrite"`
	// ReaderMicrosPerWrite is the reading thread's CPU per write read.
	ReaderMicrosPerWrite float64 `json:"readerMicrosPerWrite"`
}

func (c Config) withDefaults() Config {
	if c.Conns <= 0 {
		c.Conns = 5000
	}
	if c.Size <= 0 {
		c.Size = 100
	}
	if c.Rounds <= 0 {
		c.Rounds = 5
	}
	if c.WriterCPU == 0 && c.ReaderCPU == 0 {
		c.ReaderCPU = 1
	}
	return c
}

// Measure opens Conns socket pairs on 127.0.0.1, reads one side with an
// epoll loop on ReaderCPU, and writes Size bytes to every socket of the
// other side, Rounds times, on WriterCPU. Everything it opens is closed
// before it returns.
func Measure(cfg Config) (Result, error) {
	cfg = cfg.withDefaults()
	res := Result{Config: cfg, LoRPSCPUs: loRPS()}
	writers, readers, closeAll, err := pairs(cfg.Conns)
	if err != nil {
		return res, err
	}
	defer closeAll()

	var received atomic.Int64
	var stop atomic.Bool
	readerCPU := make(chan time.Duration, 1)
	readerErr := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := pin(cfg.ReaderCPU); err != nil {
			readerErr <- err
			return
		}
		readerErr <- nil
		start := threadCPU()
		readAll(readers, &received, &stop)
		readerCPU <- threadCPU() - start
	}()
	if err := <-readerErr; err != nil {
		return res, err
	}

	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := pin(cfg.WriterCPU); err != nil {
		stop.Store(true)
		<-readerCPU
		return res, err
	}
	payload := make([]byte, cfg.Size)
	iov := []unix.Iovec{{Base: &payload[0]}}
	iov[0].SetLen(len(payload))
	for round := 1; round <= cfg.Rounds; round++ {
		start := threadCPU()
		for _, fd := range writers {
			if _, _, errno := unix.Syscall(unix.SYS_WRITEV, uintptr(fd), uintptr(unsafe.Pointer(&iov[0])), 1); errno != 0 {
				stop.Store(true)
				<-readerCPU
				return res, fmt.Errorf("writev: %w", errno)
			}
		}
		spent := threadCPU() - start
		res.WriterMicrosPerWrite = append(res.WriterMicrosPerWrite, float64(spent.Nanoseconds())/float64(len(writers))/1e3)
		// Let the reader catch up, so that each round starts with the
		// reader idle in epoll_wait, as between two broadcasts.
		want := int64(round * len(writers) * cfg.Size)
		for deadline := time.Now().Add(10 * time.Second); received.Load() < want; {
			if time.Now().After(deadline) {
				stop.Store(true)
				<-readerCPU
				return res, errors.New("the reader fell behind by more than 10 s")
			}
			time.Sleep(time.Millisecond)
		}
		time.Sleep(100 * time.Millisecond)
	}
	stop.Store(true)
	res.ReaderMicrosPerWrite = float64((<-readerCPU).Nanoseconds()) / float64(cfg.Rounds*len(writers)) / 1e3
	sorted := slices.Clone(res.WriterMicrosPerWrite)
	slices.Sort(sorted)
	res.MedianMicrosPerWrite = sorted[len(sorted)/2]
	return res, nil
}

// pairs connects n loopback socket pairs and returns their raw descriptors,
// writer (accepted) side and reader (dialed) side.
func pairs(n int) (writers, readers []int, closeAll func(), err error) {
	var files []*os.File // they own the descriptors: kept until closeAll
	closeAll = func() {
		for _, f := range files {
			f.Close()
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, closeAll, err
	}
	defer ln.Close()
	take := func(c net.Conn) (int, error) {
		f, err := c.(*net.TCPConn).File() // a duplicate descriptor
		c.Close()
		if err != nil {
			return 0, err
		}
		files = append(files, f)
		fd := int(f.Fd())
		return fd, unix.SetNonblock(fd, true)
	}
	for range n {
		d, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			return nil, nil, closeAll, fmt.Errorf("dial: %w", err)
		}
		a, err := ln.Accept()
		if err != nil {
			d.Close()
			return nil, nil, closeAll, fmt.Errorf("accept: %w", err)
		}
		rfd, err1 := take(d)
		wfd, err2 := take(a)
		if err := errors.Join(err1, err2); err != nil {
			return nil, nil, closeAll, err
		}
		readers, writers = append(readers, rfd), append(writers, wfd)
	}
	return writers, readers, closeAll, nil
}

// readAll reads every readable socket until stop, counting bytes.
func readAll(fds []int, received *atomic.Int64, stop *atomic.Bool) {
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return
	}
	defer unix.Close(ep)
	for _, fd := range fds {
		ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}
		_ = unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, fd, &ev)
	}
	buf := make([]byte, 64<<10)
	events := make([]unix.EpollEvent, 512)
	for !stop.Load() {
		n, _ := unix.EpollWait(ep, events, 50)
		for _, e := range events[:max(n, 0)] {
			if m, _ := unix.Read(int(e.Fd), buf); m > 0 {
				received.Add(int64(m))
			}
		}
	}
}

// pin binds the calling thread to cpu.
func pin(cpu int) error {
	var set unix.CPUSet
	set.Set(cpu)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return fmt.Errorf("cannot pin to CPU %d: %w", cpu, err)
	}
	return nil
}

// threadCPU is the calling thread's CPU time, user and system. It reads
// CLOCK_THREAD_CPUTIME_ID, the scheduler's exact runtime: getrusage's
// RUSAGE_THREAD splits that runtime by tick samples and keeps both parts
// monotonic, so over a round of a few hundred microseconds it often did
// not move at all (measured: 0 µs per write in two of three rounds).
func threadCPU() time.Duration {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts)
	return time.Duration(ts.Nano())
}

func loRPS() string {
	b, err := os.ReadFile("/sys/class/net/lo/queues/rx-0/rps_cpus")
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(b))
}
