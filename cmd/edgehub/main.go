// Command edgehub runs an edgehub node: a WebSocket edge server for chat
// rooms and streamed AI answers. With no flags it is the embedded single
// node: no auth, rooms and AI queue in memory, the demo page at /.
//
// Every flag has an environment twin: -max-conns is EDGEHUB_MAX_CONNS.
// A flag on the command line wins over its environment variable.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/edgehub/edgehub/cmd/internal/envflag"
	"github.com/edgehub/edgehub/fanout"
	"github.com/edgehub/edgehub/netloop"
	"github.com/edgehub/edgehub/node"
	"github.com/edgehub/edgehub/queue"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "tune" {
		os.Exit(tuneMain(os.Args[2:], os.Stdout, os.Stderr))
	}
	if os.Getenv("GOGC") == "" {
		// Most of a node's memory is live connection state and its
		// broadcast path hardly allocates, so a tighter GC target costs
		// little CPU: measured, 100 -> 50 saves ~0.5 KB per idle
		// connection (GC headroom). GOGC in the environment wins.
		debug.SetGCPercent(50)
	}
	cfg, logLevel, err := parseConfig(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "edgehub:", err)
		os.Exit(2)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel}))
	n, err := node.New(cfg, log)
	if err == nil {
		err = serveDebug(debugListen, log)
	}
	if err == nil {
		err = n.Listen()
	}
	if err != nil {
		log.Error("cannot start", "err", err)
		os.Exit(1)
	}
	if err := n.Run(signalContext(log)); err != nil {
		log.Error("stopped", "err", err)
		os.Exit(1)
	}
}

// signalContext is done at SIGTERM or SIGINT, which start a drain; a
// second SIGINT exits at once.
func signalContext(log *slog.Logger) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		s := <-sig
		log.Info("signal: draining", "signal", s.String())
		cancel()
		for s := range sig {
			if s == syscall.SIGINT {
				log.Warn("second SIGINT: exiting now")
				os.Exit(130)
			}
		}
	}()
	return ctx
}

func parseConfig(args []string) (node.Config, slog.Level, error) {
	var (
		cfg     node.Config
		origins string
		aiRules string
		err     error
		level   = slog.LevelInfo
	)
	fs := flag.NewFlagSet("edgehub", flag.ContinueOnError)
	fs.StringVar(&cfg.Listen, "listen", node.DefaultListen, "address to serve WebSocket and HTTP on")
	fs.StringVar(&cfg.InternalListen, "internal-listen", "", "address serving /metrics and /api/* alone, taking them off -listen (e.g. 127.0.0.1:9090)")
	fs.StringVar(&cfg.NodeID, "node-id", "", "this node's id in the fleet (default: host name and a random suffix)")
	fs.StringVar(&cfg.Secret, "secret", "", "HS256 key of client JWTs; without it the node runs without auth")
	fs.BoolVar(&cfg.Insecure, "insecure", false, "no auth, even with -secret: every client may do anything (the demo default)")
	fs.BoolVar(&cfg.AllowNoExp, "allow-no-exp", false, "accept client tokens without an exp claim (refused by default: they would be valid forever)")
	fs.StringVar(&cfg.APIKey, "api-key", "", "bearer key of the HTTP API (/api/publish, /api/fleet, /api/queues)")
	fs.StringVar(&origins, "allowed-origins", "", "comma-separated Origin patterns browsers may connect from (e.g. https://*.example.com); empty allows any")
	fs.IntVar(&cfg.MaxConns, "max-conns", node.DefaultMaxConns, "WebSocket connections beyond which upgrades are answered 503")
	fs.IntVar(&cfg.MaxMessage, "max-message", 65536, "largest client message in bytes (close 1009 beyond)")
	fs.IntVar(&cfg.MaxQueue, "max-queue", 1<<20, "outbound bytes queued per connection before it is closed with 1013")
	fs.IntVar(&cfg.SendBuffer, "sndbuf", netloop.DefaultSendBuffer, "SO_SNDBUF of every accepted socket in bytes (what a stalled client may hold in the kernel besides -max-queue); -1 keeps Linux's autotuning")
	fs.DurationVar(&cfg.CloseLinger, "close-linger", netloop.DefaultCloseLinger, "how long to wait for a client's answer to the node's close frame before closing the socket (reset if the client left bytes unread)")
	fs.DurationVar(&cfg.RequestTimeout, "request-timeout", node.DefaultRequestTimeout, "bound on the bus and queue calls of one client request (error unavailable beyond)")
	fs.DurationVar(&cfg.Heartbeat, "heartbeat", 25*time.Second, "ping interval; a client silent for two is closed")
	fs.DurationVar(&cfg.DrainTimeout, "drain-timeout", node.DefaultDrainTimeout, "longest a drain (SIGTERM) takes before exit")
	fs.StringVar(&cfg.Redis, "redis", "", "Redis of the fleet: comma-separated redis://host:port shards, or redis-cluster://host:port; empty runs a single node in memory")
	fs.StringVar(&cfg.RedisPrefix, "redis-prefix", fanout.DefaultRedisPrefix, "prefix of every Redis key and channel (fleets sharing one Redis need their own)")
	fs.IntVar(&cfg.HistorySize, "history-size", fanout.DefaultHistorySize, "most messages each room keeps, for recovery")
	fs.DurationVar(&cfg.HistoryTTL, "history-ttl", fanout.DefaultHistoryTTL, "no message older than this is kept for recovery")
	fs.IntVar(&cfg.RecoveryMax, "recovery-max", 0, "most messages a join may replay; beyond, recovered false (default: -history-size)")
	fs.Float64Var(&cfg.RateLimit, "rate-limit", node.DefaultRateLimit, "client messages per second per connection")
	fs.IntVar(&cfg.RateBurst, "rate-burst", node.DefaultRateLimit, "client messages a connection may send in a burst")
	fs.IntVar(&cfg.MaxRooms, "max-rooms", node.DefaultMaxRooms, "rooms one connection may be in")
	fs.IntVar(&cfg.AIWorkers, "ai-workers", node.DefaultAIWorkers, "in-process AI workers")
	fs.DurationVar(&cfg.AITimeout, "ai-timeout", node.DefaultAITimeout, "longest an AI answer may take")
	fs.DurationVar(&cfg.EchoDelay, "echo-delay", node.DefaultEchoDelay, "pause between the echo backend's words")
	fs.StringVar(&aiRules, "ai-rules", "", "JSON file of the AI routing rules (queue/rules.default.json is the format and the default)")
	fs.IntVar(&cfg.AI.MaxWaiting, "ai-max-waiting", queue.DefaultMaxWaiting, "AI jobs waiting in a queue beyond which ai-query gets error unavailable")
	fs.IntVar(&cfg.AI.MaxPerUser, "ai-max-per-user", queue.DefaultMaxPerUser, "AI jobs one user may have waiting or running (error rate_limited beyond)")
	fs.TextVar(&level, "log-level", level, "log level: debug, info, warn, error")
	fs.StringVar(&debugListen, "debug-listen", "", "address to serve net/http/pprof on (e.g. 127.0.0.1:6060); empty: off")
	if err := fs.Parse(args); err != nil {
		return cfg, level, err
	}
	if err := envflag.Apply(fs, "EDGEHUB_", os.LookupEnv); err != nil {
		return cfg, level, err
	}
	if cfg.AI.Rules, err = queue.LoadRules(aiRules); err != nil {
		return cfg, level, err
	}
	if origins != "" {
		for _, o := range strings.Split(origins, ",") {
			if o = strings.TrimSpace(o); o != "" {
				cfg.AllowedOrigins = append(cfg.AllowedOrigins, o)
			}
		}
	}
	return cfg, level, nil
}
