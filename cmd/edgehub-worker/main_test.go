package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/edgehub/edgehub/queue"
)

func TestParseConfigFlagsAndEnvironment(t *testing.T) {
	t.Setenv("EDGEHUB_WORKER_REDIS", "redis://127.0.0.1:1")
	t.Setenv("EDGEHUB_WORKER_BACKEND", "openai")
	t.Setenv("EDGEHUB_WORKER_BACKEND_URL", "http://127.0.0.1:2/v1/")
	t.Setenv("EDGEHUB_WORKER_MODEL", "env-model")
	t.Setenv("EDGEHUB_WORKER_VISIBILITY_TIMEOUT", "7s")
	cfg, err := parseConfig([]string{"-model", "flag-model", "-queues", "code, short", "-max-attempts", "5"})
	if err != nil {
		t.Fatal(err)
	}
	w := cfg.worker
	if cfg.redis != "redis://127.0.0.1:1" || cfg.backendCfg.BaseURL != "http://127.0.0.1:2/v1/" || w.Model != "flag-model" ||
		w.VisibilityTimeout != 7*time.Second || w.MaxAttempts != 5 || len(w.Queues) != 2 || w.Queues[1] != "short" {
		t.Fatalf("config %+v / %+v", cfg, w)
	}
	if _, ok := w.Backend.(*queue.OpenAI); !ok {
		t.Fatalf("backend %T, want *queue.OpenAI", w.Backend)
	}
	if w.Grace != queue.DefaultGrace {
		t.Fatalf("-disconnect-grace default %v", w.Grace)
	}
}

func TestParseConfigQueuesFromRules(t *testing.T) {
	rules := filepath.Join(t.TempDir(), "rules.json")
	if err := os.WriteFile(rules, []byte(`{"default":{"queue":"general"},"rules":[{"queue":"math","pattern":"\\d"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := parseConfig([]string{"-redis", "redis://x:1", "-ai-rules", rules})
	if err != nil {
		t.Fatal(err)
	}
	if q := cfg.worker.Queues; len(q) != 2 || q[0] != "general" || q[1] != "math" {
		t.Fatalf("queues %q", q)
	}
	if cfg, _ := parseConfig([]string{"-redis", "redis://x:1"}); len(cfg.worker.Queues) != len(queue.DefaultRules().Queues()) {
		t.Fatalf("default queues %q", cfg.worker.Queues)
	}
}

func TestParseConfigRefuses(t *testing.T) {
	for _, args := range [][]string{
		{}, // no -redis
		{"-redis", "redis://x:1", "-backend", "gpt"},                // unknown backend
		{"-redis", "redis://x:1", "-ai-rules", "/nonexistent.json"}, // no rules file
	} {
		if _, err := parseConfig(args); err == nil {
			t.Errorf("%q accepted", args)
		}
	}
}
