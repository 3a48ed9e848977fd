package node

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"time"

	"github.com/edgehub/edgehub/fanout"
	"github.com/edgehub/edgehub/frame"
	"github.com/edgehub/edgehub/netloop"
)

// Config is a node's configuration; the zero value means the defaults of
// the embedded single node (no auth, in-memory rooms and AI queue).
type Config struct {
	Listen         string        // address to listen on; ":8080"
	InternalListen string        // address serving /metrics and /api/* alone (then not on Listen); empty: on Listen
	NodeID         string        // this node's id in the fleet; hostname plus a random suffix
	Secret         string        // HS256 key of client JWTs; without one the node runs without auth
	Insecure       bool          // no auth even with a Secret: every connection is an anonymous user allowed everything
	APIKey         string        // bearer key of the HTTP API
	AllowedOrigins []string      // allowed Origin headers of upgrades; empty allows any
	MaxConns       int           // WebSocket connections beyond which upgrades get 503; 100000
	MaxMessage     int           // largest client message; 65536
	MaxQueue       int           // outbound bytes queued per connection before close 1013; 1 MiB
	SendBuffer     int           // SO_SNDBUF of every accepted socket; 64 KiB (netloop.DefaultSendBuffer); negative keeps the kernel's autotuning
	CloseLinger    time.Duration // wait for the client's answer to our close frame; 2s
	RequestTimeout time.Duration // bound on the bus and queue calls of one client request; 5s
	AllowNoExp     bool          // accept tokens without an exp claim (by default they are refused)
	Heartbeat      time.Duration // ping interval; 25s
	DrainTimeout   time.Duration // longest a drain takes; 10s
	Redis          string        // -redis: comma-separated redis:// shards or one redis-cluster://; empty: a single node in memory
	RedisPrefix    string        // prefix of every Redis key and channel; "eh"
	HistorySize    int           // most messages a room keeps for recovery; 1000
	HistoryTTL     time.Duration // no message older is kept; 10m
	RecoveryMax    int           // most messages a join replays (more: recovered false); the history size
	RateLimit      float64       // client messages per second per connection; 1000
	RateBurst      int           // client messages a connection may send at once; 1000
	MaxRooms       int           // rooms one connection may be in; 1000
	AIWorkers      int           // in-process AI workers; 4
	AITimeout      time.Duration // longest an AI job may run; 2m
	EchoDelay      time.Duration // pause between the echo backend's words; 50ms
	AI             AIConfig      // the AI queue: routing and caps (node/ai.go)
}

// Defaults.
const (
	DefaultListen         = ":8080"
	DefaultMaxConns       = 100000
	DefaultDrainTimeout   = 10 * time.Second
	DefaultRateLimit      = 1000
	DefaultMaxRooms       = 1000
	DefaultAIWorkers      = 4
	DefaultAITimeout      = 2 * time.Minute
	DefaultEchoDelay      = 50 * time.Millisecond
	DefaultRequestTimeout = 5 * time.Second
)

func (c Config) withDefaults() Config {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.NodeID == "" {
		c.NodeID = defaultNodeID()
	}
	if c.MaxConns <= 0 {
		c.MaxConns = DefaultMaxConns
	}
	if c.MaxMessage <= 0 {
		c.MaxMessage = frame.DefaultMaxMessage
	}
	if c.MaxQueue <= 0 {
		c.MaxQueue = netloop.DefaultMaxQueue
	}
	if c.Heartbeat <= 0 {
		c.Heartbeat = netloop.DefaultHeartbeat
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = DefaultDrainTimeout
	}
	if c.HistorySize <= 0 {
		c.HistorySize = fanout.DefaultHistorySize
	}
	if c.HistoryTTL <= 0 {
		c.HistoryTTL = fanout.DefaultHistoryTTL
	}
	if c.RecoveryMax <= 0 {
		c.RecoveryMax = c.HistorySize
	}
	if c.RateLimit <= 0 {
		c.RateLimit = DefaultRateLimit
	}
	if c.RateBurst <= 0 {
		c.RateBurst = int(max(c.RateLimit, 1))
	}
	if c.MaxRooms <= 0 {
		c.MaxRooms = DefaultMaxRooms
	}
	if c.AIWorkers <= 0 {
		c.AIWorkers = DefaultAIWorkers
	}
	if c.AITimeout <= 0 {
		c.AITimeout = DefaultAITimeout
	}
	if c.EchoDelay < 0 {
		c.EchoDelay = 0
	} else if c.EchoDelay == 0 {
		c.EchoDelay = DefaultEchoDelay
	}
	return c
}

// authEnabled: tokens are checked when there is a secret to check them
// with and -insecure was not asked for.
func (c Config) authEnabled() bool { return c.Secret != "" && !c.Insecure }

// defaultNodeID is the host name with a random suffix, so that several
// nodes on one host differ.
func defaultNodeID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "edgehub"
	}
	var b [3]byte
	_, _ = rand.Read(b[:])
	return host + "-" + hex.EncodeToString(b[:])
}
