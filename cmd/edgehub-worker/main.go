// Command edgehub-worker answers the AI questions of an edgehub fleet: it
// takes jobs from the Redis Streams queue (the first -redis URL), streams
// each answer from an LLM backend (OpenAI-compatible, Anthropic, or echo)
// and sends the chunks to the node of the connection that asked, or to a
// room's members on every node.
//
// Every flag has an environment twin: -backend-url is
// EDGEHUB_WORKER_BACKEND_URL. A flag on the command line wins. Without
// -backend-url and -api-key the SDKs read OPENAI_BASE_URL /
// OPENAI_API_KEY or ANTHROPIC_BASE_URL / ANTHROPIC_API_KEY.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/redis/rueidis"

	"github.com/edgehub/edgehub/cmd/internal/envflag"
	"github.com/edgehub/edgehub/fanout"
	"github.com/edgehub/edgehub/queue"
)

type config struct {
	redis, prefix, backend, queues, listen string
	rules                                  string
	echoDelay                              time.Duration
	backendCfg                             queue.BackendConfig
	worker                                 queue.WorkerConfig
	level                                  slog.Level
}

func main() {
	cfg, err := parseConfig(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "edgehub-worker:", err)
		os.Exit(2)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.level}))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, cfg, log); err != nil {
		log.Error("stopped", "err", err)
		os.Exit(1)
	}
}

func parseConfig(args []string) (config, error) {
	var cfg config
	w := &cfg.worker
	fs := flag.NewFlagSet("edgehub-worker", flag.ContinueOnError)
	fs.StringVar(&cfg.redis, "redis", "", "Redis of the fleet, as the nodes' -redis (the queue lives on the first URL)")
	fs.StringVar(&cfg.prefix, "redis-prefix", fanout.DefaultRedisPrefix, "prefix of every Redis key and channel, as the nodes'")
	fs.StringVar(&cfg.backend, "backend", "echo", "LLM backend: openai (any OpenAI-compatible server), anthropic, or echo")
	fs.StringVar(&cfg.queues, "queues", "", "comma-separated queues to answer (default: every queue of -ai-rules)")
	fs.StringVar(&cfg.rules, "ai-rules", "", "the nodes' -ai-rules file, for the default -queues (default: the shipped rules)")
	fs.IntVar(&w.Concurrency, "concurrency", 16, "jobs answered at once")
	fs.StringVar(&cfg.backendCfg.Model, "model", "", "model of the jobs whose rule and client name none")
	fs.StringVar(&cfg.backendCfg.BaseURL, "backend-url", "", "base URL of the backend (e.g. http://127.0.0.1:8000/v1/ for vLLM); default: the SDK's, or OPENAI_BASE_URL / ANTHROPIC_BASE_URL")
	fs.StringVar(&cfg.backendCfg.APIKey, "api-key", "", "API key of the backend; default: OPENAI_API_KEY / ANTHROPIC_API_KEY")
	fs.Int64Var(&cfg.backendCfg.MaxTokens, "max-tokens", 1024, "longest answer, in tokens")
	fs.DurationVar(&w.VisibilityTimeout, "visibility-timeout", 30*time.Second, "a job whose worker stopped refreshing it for this long is taken over")
	fs.IntVar(&w.MaxAttempts, "max-attempts", 3, "attempts of a job before it is dead-lettered")
	fs.DurationVar(&w.Grace, "disconnect-grace", queue.DefaultGrace, "how long a job whose asker disconnected waits for a resume before it is cancelled")
	fs.DurationVar(&w.Timeout, "timeout", 2*time.Minute, "longest one attempt of an answer may take")
	fs.DurationVar(&cfg.echoDelay, "echo-delay", 0, "pause between the echo backend's words")
	fs.StringVar(&w.Consumer, "consumer", "", "this worker's name in the consumer group (default: host, pid and a random suffix)")
	fs.StringVar(&cfg.listen, "listen", ":9091", "address of /metrics and /healthz; empty: none")
	fs.TextVar(&cfg.level, "log-level", slog.LevelInfo, "log level: debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if err := envflag.Apply(fs, "EDGEHUB_WORKER_", os.LookupEnv); err != nil {
		return cfg, err
	}
	if cfg.redis == "" {
		return cfg, errors.New("-redis is required: the worker takes its jobs from the fleet's Redis")
	}
	for _, q := range strings.Split(cfg.queues, ",") {
		if q = strings.TrimSpace(q); q != "" {
			w.Queues = append(w.Queues, q)
		}
	}
	if len(w.Queues) == 0 {
		rules, err := queue.LoadRules(cfg.rules)
		if err != nil {
			return cfg, err
		}
		w.Queues = rules.Queues()
	}
	w.Prefix, w.Model = cfg.prefix, cfg.backendCfg.Model
	switch cfg.backend {
	case "echo":
		w.Backend = queue.Echo{Delay: cfg.echoDelay}
	case "openai":
		w.Backend = queue.NewOpenAI(cfg.backendCfg)
	case "anthropic":
		w.Backend = queue.NewAnthropic(cfg.backendCfg)
	default:
		return cfg, fmt.Errorf("-backend %q: want openai, anthropic or echo", cfg.backend)
	}
	return cfg, nil
}

func run(ctx context.Context, cfg config, log *slog.Logger) error {
	first, _, _ := strings.Cut(cfg.redis, ",")
	opt, err := fanout.RedisClientOption(strings.TrimSpace(first))
	if err != nil {
		return err
	}
	client, err := rueidis.NewClient(opt)
	if err != nil {
		return fmt.Errorf("cannot reach the queue's Redis: %w", err)
	}
	defer client.Close()
	set := metrics.NewSet()
	w := &cfg.worker
	w.Metrics = set
	if w.Consumer == "" {
		host, _ := os.Hostname()
		w.Consumer = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	bus, err := fanout.NewRedis(fanout.RedisConfig{URLs: cfg.redis, Prefix: cfg.prefix, NodeID: "worker-" + w.Consumer, Metrics: set}, nil)
	if err != nil {
		return err
	}
	defer bus.Close()
	w.Client, w.Transport = client, bus
	worker, err := queue.NewWorker(ctx, *w)
	if err != nil {
		return err
	}
	if cfg.listen != "" {
		ln, err := net.Listen("tcp", cfg.listen)
		if err != nil {
			return err
		}
		mux := http.NewServeMux()
		mux.HandleFunc("GET /metrics", func(rw http.ResponseWriter, _ *http.Request) {
			set.WritePrometheus(rw)
			metrics.WriteProcessMetrics(rw)
		})
		mux.HandleFunc("GET /healthz", func(rw http.ResponseWriter, _ *http.Request) { rw.Write([]byte("ok\n")) })
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go srv.Serve(ln)
		defer srv.Close()
		log.Info("metrics", "addr", ln.Addr().String())
	}
	log.Info("edgehub-worker answering", "backend", cfg.backend, "queues", strings.Join(w.Queues, ","),
		"concurrency", w.Concurrency, "consumer", w.Consumer, "visibility", w.VisibilityTimeout.String())
	err = worker.Run(ctx)
	log.Info("stopped answering", "running", worker.Running())
	return err
}
