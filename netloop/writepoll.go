package netloop

import (
	"fmt"
	"sync"

	"golang.org/x/sys/unix"
)

// writePoller waits for sockets whose kernel send buffer was full. It has
// its own epoll set, apart from netpoll's, with EPOLLOUT | EPOLLET |
// EPOLLONESHOT: a registration fires once, when the socket drains, and is
// re-armed by the next EAGAIN. The kernel drops a registration when the fd
// is closed, and events carry the connection id, not the fd, so an event
// for a closed connection finds nothing.
type writePoller struct {
	epfd  int
	wake  int // eventfd that stops run: closing epfd would not wake epoll_wait
	mu    sync.Mutex
	conns map[uint64]*Conn
}

// stopID is the event id of the wake eventfd; connection ids start at 1.
const stopID = 0

func newWritePoller() (*writePoller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("cannot create write poller: %w", err)
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("cannot create write poller: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: stopID}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wake, &ev); err != nil {
		unix.Close(epfd)
		unix.Close(wake)
		return nil, fmt.Errorf("cannot create write poller: %w", err)
	}
	return &writePoller{epfd: epfd, wake: wake, conns: make(map[uint64]*Conn)}, nil
}

// arm waits for c's socket to become writable. Called from c's flush with
// c.wmu held, so the fd is open.
func (p *writePoller) arm(c *Conn) error {
	p.mu.Lock()
	p.conns[c.id] = c
	p.mu.Unlock()
	ev := unix.EpollEvent{
		Events: unix.EPOLLOUT | unix.EPOLLET | unix.EPOLLONESHOT,
		Fd:     int32(uint32(c.id)),
		Pad:    int32(uint32(c.id >> 32)),
	}
	op := unix.EPOLL_CTL_MOD
	if !c.epolled {
		op = unix.EPOLL_CTL_ADD
	}
	if err := unix.EpollCtl(p.epfd, op, int(c.fd), &ev); err != nil {
		p.forget(c)
		return fmt.Errorf("cannot wait for writability: %w", err)
	}
	c.epolled = true
	return nil
}

func (p *writePoller) forget(c *Conn) {
	p.mu.Lock()
	delete(p.conns, c.id)
	p.mu.Unlock()
}

func (p *writePoller) run() {
	defer unix.Close(p.wake)
	defer unix.Close(p.epfd)
	events := make([]unix.EpollEvent, 256)
	for {
		n, err := unix.EpollWait(p.epfd, events, -1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return
		}
		for i := range events[:n] {
			id := uint64(uint32(events[i].Fd)) | uint64(uint32(events[i].Pad))<<32
			if id == stopID {
				return
			}
			p.mu.Lock()
			c := p.conns[id]
			delete(p.conns, id)
			p.mu.Unlock()
			if c != nil {
				c.onWritable()
			}
		}
	}
}

// close stops run, which closes the poller's descriptors.
func (p *writePoller) close() {
	var one [8]byte
	one[0] = 1 // eventfd counters are host-endian; any non-zero value wakes
	unix.Write(p.wake, one[:])
}
