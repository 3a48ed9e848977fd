// Package netloop serves WebSocket connections (and plain HTTP requests on
// the same port) on cloudwego/netpoll's epoll event loop, with no goroutine
// per connection, idle or busy.
//
// It owns a connection's whole life: the HTTP request and the WebSocket
// upgrade (gobwas/ws on bytes already buffered), frame parsing (package
// frame), a bounded outbound queue, heartbeats and idle close on one timer
// wheel, and the close handshake. It knows nothing of rooms, JSON or Redis:
// the Handler it is given sees complete text messages and plain HTTP
// requests.
//
// # Goroutines
//
//	netpoll pollers (1 for up to 20 cores)  epoll_wait, read sockets into each
//	                                        connection's input buffer
//	netpoll pool (gopool, idle workers exit) OnRequest: parse what arrived,
//	                                        call the Handler; never waits for
//	                                        more bytes (partial frames go to a
//	                                        pooled stash)
//	flushers (GOMAXPROCS)                   writev(2) queued frames, several
//	                                        frames per syscall
//	write poller (1)                        edge-triggered EPOLLOUT for the few
//	                                        connections whose socket buffer is
//	                                        full, so no goroutine ever blocks
//	                                        on a slow reader
//	timer wheel (1)                         handshake timeout, pings, idle
//	                                        close, linger after close, write
//	                                        timeout
//
// # Callback order and blocking rules
//
//	accept ──▶ onPrepare (Conn created, not yet polled)
//	bytes  ──▶ onRequest ──▶ Handler.ServeHTTP | Handler.Authorize ──▶ Handler.OnOpen
//	                     ──▶ Handler.OnText (one complete text message at a time)
//	close  ──▶ onClose (netpoll close callback, after onRequest returned)
//	                     ──▶ Handler.OnClose (exactly once per opened WebSocket)
//
// Handler.OnText and Handler.ServeHTTP run on netpoll's pool, serialised per
// connection; they may block briefly (a Redis round trip) but every moment
// they block holds a pool goroutine. Handler.OnClose runs on whichever
// goroutine closes the connection: a netpoll poller (the peer's FIN or
// reset), the pool (the close handshake completed), a flusher (the last
// byte after a close frame, or a failed write) or the timer wheel (close
// linger, write or handshake timeout). It must return quickly and must
// not wait for any of those goroutines. Conn.Send and Conn.Close never
// block and may be called from any goroutine.
//
// # Lock order
//
//	Conn.wmu (held across writev and while the fd is closed)
//	  └─ Conn.mu (the outbound queue and close state)
//	       └─ flusher.mu, writePoller.mu, wheel.mu, registry shard mu
//
// A Handler may call Send on many connections while holding its own locks
// (a room's member list): Send takes only Conn.mu and a flusher's mu, so a
// Handler lock may be taken before them but never while they are held.
package netloop
