package main

import (
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

func TestParseConfigRefuses(t *testing.T) {
	for _, args := range [][]string{
		{}, // no -redis
		{"-redis", "redis://x:1", "-backend", "gpt"}, // unknown backend
	} {
		if _, err := parseConfig(args); err == nil {
			t.Errorf("%q accepted", args)
		}
	}
}
