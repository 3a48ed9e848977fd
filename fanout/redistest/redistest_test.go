package redistest

import (
	"strings"
	"testing"
)

func TestStartKillRestartKeepsData(t *testing.T) {
	s := Start(t)
	s.MustDo("SET", "k", "v")
	s.Kill()
	if _, err := s.Do("PING"); err == nil {
		t.Fatal("server still answers after Kill")
	}
	s.Restart()
	if got := s.MustDo("GET", "k"); got != "v" {
		t.Fatalf("after restart GET k = %q, want v (AOF with appendfsync always)", got)
	}
}

func TestCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster start-up in -short")
	}
	c := StartCluster(t, 3)
	info := c.Servers[0].MustDo("CLUSTER", "INFO")
	if want := "cluster_known_nodes:3"; !strings.Contains(info, want) {
		t.Fatalf("CLUSTER INFO lacks %q:\n%s", want, info)
	}
}
