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
	mu    sync.Mutex
	conns map[uint64]*Conn
}

func newWritePoller() (*writePoller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("cannot create write poller: %w", err)
	}
	return &writePoller{epfd: epfd, conns: make(map[uint64]*Conn)}, nil
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
	if err := unix.EpollCtl(p.epfd, op, c.fd, &ev); err != nil {
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

func (p *writePoller) run(s *Server) {
	events := make([]unix.EpollEvent, 256)
	for {
		n, err := unix.EpollWait(p.epfd, events, -1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return // closed at shutdown
		}
		for i := range events[:n] {
			id := uint64(uint32(events[i].Fd)) | uint64(uint32(events[i].Pad))<<32
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

func (p *writePoller) close() { unix.Close(p.epfd) }
