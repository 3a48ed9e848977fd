package netloop

import (
	"golang.org/x/sys/unix"
)

// Socket options that bound what a connection holds in the kernel.
//
// Linux autotunes an accepted socket's send buffer up to
// net.ipv4.tcp_wmem's maximum (4 MiB by default), so without a cap a
// client that stops reading holds megabytes of kernel memory before a
// single byte waits in its outbound queue: Config.MaxQueue would bound
// nothing. With SO_SNDBUF set, what one stalled client holds is about
// Config.SendBuffer (the kernel doubles the value for its bookkeeping)
// plus Config.MaxQueue.

// setSendBuffer fixes fd's send buffer at n bytes (n <= 0 leaves Linux's
// autotuning). The kernel caps n at net.core.wmem_max.
func setSendBuffer(fd, n int) error {
	if n <= 0 {
		return nil
	}
	return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, n)
}

// abort closes a connection whose close linger or write timeout ran out.
// If the kernel still holds bytes the peer never took, the socket is reset
// (SO_LINGER 0) instead of closed: a plain close would leave them behind in
// an orphaned socket that probes the peer's zero window for minutes, with
// its memory, after edgehub has let go. A peer that took everything gets
// an ordinary FIN.
func (c *Conn) abort() {
	c.wmu.Lock()
	if !c.fdClosed {
		// SIOCOUTQ (TIOCOUTQ on Linux): bytes sent but not acknowledged,
		// plus bytes not yet sent.
		if n, err := unix.IoctlGetInt(int(c.fd), unix.TIOCOUTQ); err == nil && n > 0 {
			_ = unix.SetsockoptLinger(int(c.fd), unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
		}
	}
	c.wmu.Unlock()
	c.nc.Close() // after wmu: netpoll may run onClosed synchronously
}
