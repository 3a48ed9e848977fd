// Command edgehub-bench is edgehub's load generator: it drives a node over
// the client protocol in one of the scenarios of package loadgen and prints
// the run as JSON (command, machine, date, summary) on stdout; with the
// plot subcommand it renders recorded runs as charts.
//
//	edgehub-bench idle -conns 18000 -rooms 100 -server-pid $PID -sources 127.0.0.2,127.0.0.3
//	edgehub-bench fanout -conns 10000 -rate 10 -duration 20s
//	edgehub-bench plot -o bench/results bench/results/*.json
//	edgehub-bench floor -conns 5000      # the kernel's CPU per small write here
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/edgehub/edgehub/bench/benchplot"
	"github.com/edgehub/edgehub/bench/floor"
	"github.com/edgehub/edgehub/bench/loadgen"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch cmd := os.Args[1]; {
	case cmd == "plot":
		err = plot(os.Args[2:])
	case cmd == "floor":
		err = measureFloor(os.Args[2:])
	case slices.Contains(loadgen.Scenarios, cmd):
		err = run(cmd, os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "edgehub-bench:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintf(os.Stderr, "usage: edgehub-bench {%s} [flags]   (-h for the flags)\n"+
		"       edgehub-bench plot [-o dir] [-ext .png|.svg] result.json...\n"+
		"       edgehub-bench floor [-conns N] [-size B] [-rounds R]\n",
		strings.Join(loadgen.Scenarios, "|"))
	os.Exit(2)
}

func run(scenario string, args []string) error {
	cfg := loadgen.Config{Scenario: scenario}
	fs := flag.NewFlagSet(scenario, flag.ExitOnError)
	fs.StringVar(&cfg.URL, "url", "ws://127.0.0.1:8080/ws", "the node's WebSocket URL")
	fs.StringVar(&cfg.APIKey, "api-key", os.Getenv("EDGEHUB_API_KEY"), "bearer key for /api/publish (env EDGEHUB_API_KEY)")
	fs.BoolVar(&cfg.AllowRemote, "allow-remote", false, "allow a node outside 127.0.0.0/8")
	fs.IntVar(&cfg.Conns, "conns", 100, "connections (storm, ai: concurrent ones)")
	fs.IntVar(&cfg.Rooms, "rooms", 1, "rooms the connections are spread over")
	fs.Float64Var(&cfg.Rate, "rate", 0, "msg/s: fanout, in total over /api/publish (default 10); rooms, per connection (default 0.1)")
	fs.IntVar(&cfg.Size, "size", 64, "bytes of each published data value")
	fs.DurationVar(&cfg.Duration, "duration", 0, "measured phase: hold, publishing, churn or querying (default 10s)")
	fs.DurationVar(&cfg.Drain, "drain", 0, "wait for in-flight deliveries after the last publish (default 5s)")
	fs.DurationVar(&cfg.Lifetime, "lifetime", 0, "storm: mean connection lifetime (default 1s)")
	fs.IntVar(&cfg.Words, "words", 0, "ai: words per query, one chunk each (default 8)")
	fs.IntVar(&cfg.Step, "step", 0, "idle: connections between two RSS samples (default conns/10)")
	fs.IntVar(&cfg.ServerPID, "server-pid", 0, "the node's pid, read from /proc for RSS and CPU")
	fs.IntVar(&cfg.ConnectConcurrency, "concurrency", 0, "dials in flight (default 256)")
	fs.DurationVar(&cfg.ConnectTimeout, "connect-timeout", 0, "bound on one dial and on waiting for joins (default 10s)")
	fs.IntVar(&cfg.ReadBuffer, "read-buffer", 0, "per-connection read buffer in bytes (default 1024)")
	fs.StringVar(&cfg.RedisAddr, "redis-addr", "", "fanout, rooms: host:port of the fleet's Redis, asked INFO cpu around the measured phase")
	fs.StringVar(&cfg.ReadyFile, "ready-file", "", "fanout: file created once every connection has joined (with -start-file)")
	fs.StringVar(&cfg.StartFile, "start-file", "", "fanout: wait for this file before publishing, no warm-up (several loaders at once)")
	fs.IntVar(&cfg.ExpectPerRoom, "expect", 0, "fanout: publish nothing, expect this many messages per room from another loader")
	spread := fs.String("spread", "", "comma-separated more ws:// URLs of the fleet: connections dial -url and these in turn")
	peerPIDs := fs.String("peer-pids", "", "comma-separated pids of the -spread nodes, summed with -server-pid")
	sources := fs.String("sources", "", "comma-separated local addresses to dial from, e.g. 127.0.0.2,127.0.0.3")
	progress := fs.Bool("progress", loadgen.IsTerminal(os.Stderr), "live status line on stderr (default: when stderr is a terminal)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	for _, s := range splitList(*sources) {
		ip := net.ParseIP(s)
		if ip == nil {
			return fmt.Errorf("-sources: %q is not an IP address", s)
		}
		cfg.Sources = append(cfg.Sources, ip)
	}
	cfg.Spread = splitList(*spread)
	for _, p := range splitList(*peerPIDs) {
		pid, err := strconv.Atoi(p)
		if err != nil {
			return fmt.Errorf("-peer-pids: %q is not a pid", p)
		}
		cfg.PeerPIDs = append(cfg.PeerPIDs, pid)
	}
	if *progress {
		cfg.Progress = os.Stderr
	}
	if _, err := loadgen.RaiseNoFile(); err != nil {
		return fmt.Errorf("cannot raise the open-file limit: %w", err)
	}

	// SIGINT or SIGTERM ends the run early; its summary is still printed.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sum, err := loadgen.Run(ctx, cfg)
	if err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, sum.Digest())
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(loadgen.NewResult(cfg, sum, os.Args))
}

// splitList splits a comma-separated flag, dropping empty items.
func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// measureFloor prints, as JSON, what one small write to a loopback socket
// costs the writing CPU here (package floor).
func measureFloor(args []string) error {
	var cfg floor.Config
	fs := flag.NewFlagSet("floor", flag.ExitOnError)
	fs.IntVar(&cfg.Conns, "conns", 5000, "socket pairs (two open files each)")
	fs.IntVar(&cfg.Size, "size", 100, "bytes per write")
	fs.IntVar(&cfg.Rounds, "rounds", 5, "writes to every socket")
	fs.IntVar(&cfg.WriterCPU, "writer-cpu", 0, "CPU of the writing thread")
	fs.IntVar(&cfg.ReaderCPU, "reader-cpu", 1, "CPU of the reading thread")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if _, err := loadgen.RaiseNoFile(); err != nil {
		return fmt.Errorf("cannot raise the open-file limit: %w", err)
	}
	res, err := floor.Measure(cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "floor: %.2f us of writer CPU per %d-byte write (median of %d rounds over %d sockets), reader %.2f us; lo rps_cpus=%s\n",
		res.MedianMicrosPerWrite, res.Size, res.Rounds, res.Conns, res.ReaderMicrosPerWrite, res.LoRPSCPUs)
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(struct {
		Command []string        `json:"command"`
		Date    string          `json:"date"`
		Machine loadgen.Machine `json:"machine"`
		Floor   floor.Result    `json:"floor"`
	}{os.Args, time.Now().UTC().Format(time.RFC3339), loadgen.ThisMachine(), res})
}

func plot(args []string) error {
	fs := flag.NewFlagSet("plot", flag.ExitOnError)
	dir := fs.String("o", ".", "directory to write the charts into")
	ext := fs.String("ext", ".png", "chart format: .png or .svg")
	if err := fs.Parse(args); err != nil {
		return err
	}
	results, err := benchplot.Load(fs.Args())
	if err != nil {
		return err
	}
	written, err := benchplot.Render(results, *dir, *ext)
	for _, w := range written {
		fmt.Println(w)
	}
	return err
}
