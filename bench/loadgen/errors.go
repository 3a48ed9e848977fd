package loadgen

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"

	"github.com/gobwas/ws"
)

// Error kinds that mean the loader ran out of its own resources.
const (
	kindNoPorts = "EADDRNOTAVAIL (loader out of source ports: add -sources)"
	kindNoFiles = "EMFILE (loader out of file descriptors)"
)

// errorKind names an error by its cause, so that the summary counts a few
// kinds instead of thousands of messages that differ only in addresses.
func errorKind(err error) string {
	var status ws.StatusError
	var ne net.Error
	switch {
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return kindNoPorts
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return kindNoFiles
	case errors.Is(err, syscall.ECONNREFUSED):
		return "ECONNREFUSED"
	case errors.Is(err, syscall.ECONNRESET):
		return "ECONNRESET"
	case errors.Is(err, syscall.EPIPE):
		return "EPIPE"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "EOF"
	case errors.Is(err, errServerClose):
		return "close frame"
	case errors.As(err, &status):
		return fmt.Sprintf("HTTP %d", int(status))
	case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	return "other: " + err.Error()
}
