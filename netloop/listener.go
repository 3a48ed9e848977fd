package netloop

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// listener is the accepting socket netpoll polls. netpoll's own listener
// closes its descriptor twice (syscall.Close on the number, then Close on
// the *os.File that owns it), and a descriptor opened in between by
// another goroutine is closed by mistake; this one closes each descriptor
// once. Accepted sockets are also close-on-exec.
type listener struct {
	ln   *net.TCPListener
	file *os.File // a duplicate of ln's socket, owned here, polled by netpoll
	fd   int
}

// Listen opens a TCP listener on addr for Serve.
func Listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("cannot listen on %s: %w", addr, err)
	}
	tcp := ln.(*net.TCPListener)
	file, err := tcp.File()
	if err != nil {
		tcp.Close()
		return nil, fmt.Errorf("cannot listen on %s: %w", addr, err)
	}
	l := &listener{ln: tcp, file: file, fd: int(file.Fd())}
	if err := unix.SetNonblock(l.fd, true); err != nil {
		l.Close()
		return nil, fmt.Errorf("cannot listen on %s: %w", addr, err)
	}
	return l, nil
}

// Accept returns the next connection, or nil, nil when there is none
// (netpoll calls it when the socket is readable).
func (l *listener) Accept() (net.Conn, error) {
	fd, sa, err := unix.Accept4(l.fd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
	if err != nil {
		if errors.Is(err, unix.EAGAIN) {
			return nil, nil
		}
		return nil, err
	}
	// netpoll sets TCP_NODELAY only on sockets it accepted itself: without
	// it, Nagle holds a frame written while the client's kernel delays
	// its ACK of the one before (40 ms on Linux), e.g. an ai-chunk just
	// after "queued". Best effort: a socket without it still works.
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	return &acceptedConn{fd: fd, local: l.ln.Addr(), remote: sockaddrToTCP(sa)}, nil
}

// Close closes the duplicate netpoll polled, then the listener itself.
func (l *listener) Close() error {
	err := l.file.Close()
	return errors.Join(err, l.ln.Close())
}

func (l *listener) Addr() net.Addr { return l.ln.Addr() }

// Fd is the descriptor netpoll polls for new connections.
func (l *listener) Fd() int { return l.fd }

// tcpAddr is a peer's address. netpoll keeps one per connection for its
// whole life, so it is a compact value (32 bytes) rather than a
// *net.TCPAddr with its separate IP slice (~130 bytes measured).
type tcpAddr netip.AddrPort

func (a *tcpAddr) Network() string { return "tcp" }
func (a *tcpAddr) String() string  { return netip.AddrPort(*a).String() }

func sockaddrToTCP(sa unix.Sockaddr) net.Addr {
	var ap netip.AddrPort
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		ap = netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port))
	case *unix.SockaddrInet6:
		ap = netip.AddrPortFrom(netip.AddrFrom16(a.Addr), uint16(a.Port))
	}
	addr := tcpAddr(ap)
	return &addr
}

// acceptedConn hands an accepted socket to netpoll, which only reads its
// descriptor and addresses (netpoll.Conn); the socket is then netpoll's.
type acceptedConn struct {
	fd            int
	local, remote net.Addr
}

var errHandedOver = errors.New("netloop: accepted socket belongs to netpoll")

func (c *acceptedConn) Fd() int                          { return c.fd }
func (c *acceptedConn) LocalAddr() net.Addr              { return c.local }
func (c *acceptedConn) RemoteAddr() net.Addr             { return c.remote }
func (c *acceptedConn) Read([]byte) (int, error)         { return 0, errHandedOver }
func (c *acceptedConn) Write([]byte) (int, error)        { return 0, errHandedOver }
func (c *acceptedConn) Close() error                     { return errHandedOver }
func (c *acceptedConn) SetDeadline(time.Time) error      { return errHandedOver }
func (c *acceptedConn) SetReadDeadline(time.Time) error  { return errHandedOver }
func (c *acceptedConn) SetWriteDeadline(time.Time) error { return errHandedOver }
