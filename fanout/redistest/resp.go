package redistest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
)

// respReader reads one RESP2 reply, enough for test set-up commands.
type respReader struct {
	c  net.Conn
	br *bufio.Reader
}

func (r *respReader) line() (string, error) {
	if r.br == nil {
		r.br = bufio.NewReader(r.c)
	}
	s, err := r.br.ReadString('\n')
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(s, "\r\n"), nil
}

func (r *respReader) reply() (string, error) {
	l, err := r.line()
	if err != nil {
		return "", err
	}
	if l == "" {
		return "", errors.New("empty reply line")
	}
	switch l[0] {
	case '+', ':':
		return l[1:], nil
	case '-':
		return "", errors.New(l[1:])
	case '$':
		n, _ := strconv.Atoi(l[1:])
		if n < 0 {
			return "", nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r.br, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	case '*':
		n, _ := strconv.Atoi(l[1:])
		parts := make([]string, 0, max(n, 0))
		for range n {
			p, err := r.reply()
			if err != nil {
				return "", err
			}
			parts = append(parts, p)
		}
		return strings.Join(parts, "\n"), nil
	}
	return "", fmt.Errorf("unexpected reply %q", l)
}
