package frame

import (
	"strconv"

	"github.com/gobwas/ws"
)

// CloseError is the close code and reason a connection must be failed with.
//
// The reason is short ASCII, so that it can be sent as is in the close frame
// (see NewClose).
type CloseError struct {
	Code   ws.StatusCode
	Reason string
}

// Error implements the error interface.
func (e *CloseError) Error() string {
	return "frame: " + e.Reason + " (close code " + strconv.Itoa(int(e.Code)) + ")"
}

// Errors returned by Parser.Feed when the peer breaks RFC 6455. They are
// sentinels: compare them with == or errors.Is, and use errors.As to get the
// close code.
var (
	ErrUnmasked               = protocolError("client frame is not masked")
	ErrReservedBits           = protocolError("reserved bits set with no extension negotiated")
	ErrBadOpcode              = protocolError("reserved opcode")
	ErrControlTooLong         = protocolError("control frame payload over 125 bytes")
	ErrControlFragmented      = protocolError("fragmented control frame")
	ErrUnexpectedContinuation = protocolError("continuation frame with no message in progress")
	ErrExpectedContinuation   = protocolError("new data frame inside a fragmented message")
	ErrBadCloseFrame          = protocolError("invalid close frame payload")

	ErrInvalidUTF8 = &CloseError{
		Code:   ws.StatusInvalidFramePayloadData,
		Reason: "invalid UTF-8 in text",
	}
	ErrTooLarge = &CloseError{
		Code:   ws.StatusMessageTooBig,
		Reason: "message too big",
	}
)

func protocolError(reason string) *CloseError {
	return &CloseError{
		Code:   ws.StatusProtocolError,
		Reason: reason,
	}
}
