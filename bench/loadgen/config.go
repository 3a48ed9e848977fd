package loadgen

import (
	"fmt"
	"io"
	"net"
	"net/url"
	"time"
)

// Scenarios names the scenarios Run knows, in the order the CLI lists them.
var Scenarios = []string{"idle", "fanout", "rooms", "storm", "ai", "publish"}

// Config describes one run. The zero value of every field but Scenario and
// URL means its default (see withDefaults).
type Config struct {
	Scenario string `json:"scenario"`
	// URL is the node's WebSocket endpoint, e.g. ws://127.0.0.1:8080/ws.
	// /api/publish and /metrics are reached on the same host.
	URL    string `json:"url"`
	APIKey string `json:"-"`
	// AllowRemote permits a node outside the loopback range; without it a
	// typo in URL cannot send load to another machine.
	AllowRemote bool `json:"-"`

	// Conns is the number of client connections (storm, ai: concurrent ones).
	Conns int `json:"conns"`
	// Rooms spreads the connections round-robin over rooms r0..r{Rooms-1}.
	Rooms int `json:"rooms"`
	// Rate is in messages per second: fanout, the publisher's total rate over
	// /api/publish (rooms taken in turn); rooms, each connection's own rate.
	Rate float64 `json:"rate,omitempty"`
	// Size is the byte length of each published data value (a JSON object
	// that carries the send timestamp).
	Size int `json:"size,omitempty"`
	// Duration bounds the measured phase: the hold (idle), the publishing
	// (fanout, rooms), the churn (storm), the querying (ai).
	Duration time.Duration `json:"duration"`
	// Drain is how long to wait, after the last publish or query, for what
	// is still in flight before counting it lost.
	Drain time.Duration `json:"drain"`
	// Lifetime is how long a storm connection stays before it closes and
	// dials again (each one picks uniformly in [Lifetime/2, 3*Lifetime/2]).
	Lifetime time.Duration `json:"lifetime,omitempty"`
	// Words is the number of words in each ai-query; the echo backend
	// answers one chunk per word.
	Words int `json:"words,omitempty"`
	// Step is how many connections idle opens between two server RSS
	// samples (the RSS-vs-connections curve).
	Step int `json:"step,omitempty"`

	// Sources are local addresses to dial from, taken in turn; each has its
	// own ephemeral-port space. Empty: the kernel chooses.
	Sources []net.IP `json:"sources,omitempty"`
	// ServerPID, when set, is read from /proc for RSS and CPU.
	ServerPID int `json:"serverPid,omitempty"`

	// Spread are more WebSocket URLs of the same fleet: connections dial
	// URL, Spread[0], Spread[1], ... in turn, while publishing (/api/publish)
	// stays on URL. Their nodes' /metrics are summed with URL's.
	Spread []string `json:"spread,omitempty"`
	// PeerPIDs are the pids of the Spread nodes; their RSS and CPU are
	// added to ServerPID's, so the cost is the fleet's.
	PeerPIDs []int `json:"peerPids,omitempty"`
	// RedisAddr (host:port), when set, is asked INFO cpu before and after
	// the measured phase (fanout): Redis's own CPU per publish.
	RedisAddr string `json:"redisAddr,omitempty"`
	// ReadyFile and StartFile hold several loaders at once (idle, fanout): once
	// every connection has joined, the loader creates ReadyFile, then waits
	// (at most 10 minutes) for StartFile to exist before it holds (idle,
	// for Duration) or publishes.
	// The measured broadcast is then the first one: there is no warm-up, as
	// another loader's would be counted here.
	ReadyFile string `json:"readyFile,omitempty"`
	StartFile string `json:"startFile,omitempty"`
	// ExpectPerRoom > 0 makes a fanout loader a listener: it publishes
	// nothing and expects that many messages in every room, published by
	// another loader, within Duration (then Drain).
	ExpectPerRoom int `json:"expectPerRoom,omitempty"`

	ConnectConcurrency int           `json:"connectConcurrency"`
	ConnectTimeout     time.Duration `json:"connectTimeout"`
	// ReadBuffer is the per-connection read buffer: frames up to this size
	// are parsed in place; it is most of the loader's memory per connection.
	ReadBuffer int `json:"readBuffer"`

	// Progress, when not nil, receives a one-line live display every second.
	Progress io.Writer `json:"-"`
}

func (c Config) withDefaults() Config {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.Conns, 100)
	def(&c.Rooms, 1)
	def(&c.Size, 64)
	def(&c.Words, 8)
	def(&c.Step, max(c.Conns/10, 1))
	def(&c.ConnectConcurrency, 256)
	def(&c.ReadBuffer, 1024)
	defDur(&c.Duration, 10*time.Second)
	defDur(&c.Drain, 5*time.Second)
	defDur(&c.Lifetime, time.Second)
	defDur(&c.ConnectTimeout, 10*time.Second)
	if c.Rate == 0 {
		switch c.Scenario {
		case "fanout":
			c.Rate = 10
		case "rooms":
			c.Rate = 0.1
		}
	}
	return c
}

func (c Config) validate() error {
	known := false
	for _, s := range Scenarios {
		known = known || s == c.Scenario
	}
	switch {
	case !known:
		return fmt.Errorf("unknown scenario %q (want one of %v)", c.Scenario, Scenarios)
	case c.Conns < 1 || c.Rooms < 1 || c.Rooms > c.Conns:
		return fmt.Errorf("need 1 <= rooms (%d) <= conns (%d)", c.Rooms, c.Conns)
	case c.Rate < 0 || c.Duration < 0:
		return fmt.Errorf("rate and duration must not be negative")
	case c.Size < minStampSize:
		return fmt.Errorf("size %d is below the %d bytes a timestamped value needs", c.Size, minStampSize)
	case c.ReadBuffer < 256:
		return fmt.Errorf("read buffer %d is below 256 bytes", c.ReadBuffer)
	}
	for _, raw := range c.urls() {
		if err := c.validURL(raw); err != nil {
			return err
		}
	}
	if c.ExpectPerRoom > 0 && c.Scenario != "fanout" || (c.ReadyFile == "") != (c.StartFile == "") {
		return fmt.Errorf("-expect is for fanout, and -ready-file and -start-file go together")
	}
	return nil
}

// validURL checks one node URL: ws://, and loopback unless AllowRemote.
func (c Config) validURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "ws" || u.Host == "" {
		return fmt.Errorf("url %q: want ws://host:port/path", raw)
	}
	ip := net.ParseIP(u.Hostname())
	if !c.AllowRemote && u.Hostname() != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("url %q is not a loopback address (allow it with -allow-remote)", raw)
	}
	return nil
}

// urls are every node URL the connections dial, URL first.
func (c Config) urls() []string { return append([]string{c.URL}, c.Spread...) }

// pids are the node processes read from /proc, ServerPID first.
func (c Config) pids() []int {
	if c.ServerPID == 0 {
		return nil
	}
	return append([]int{c.ServerPID}, c.PeerPIDs...)
}

// httpBaseOf is the HTTP origin of a node's WebSocket URL.
func httpBaseOf(raw string) string {
	u, _ := url.Parse(raw) // validated
	return "http://" + u.Host
}

// httpBase is the publishing node's HTTP origin, derived from URL.
func (c Config) httpBase() string { return httpBaseOf(c.URL) }
