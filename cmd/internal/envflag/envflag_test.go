package envflag

import (
	"flag"
	"testing"
	"time"
)

func TestApply(t *testing.T) {
	env := map[string]string{"X_MAX_CONNS": "7", "X_NAME": "env", "X_WAIT": "3s", "OTHER_NAME": "no"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	conns := fs.Int("max-conns", 1, "")
	name := fs.String("name", "default", "")
	wait := fs.Duration("wait", time.Second, "")
	if err := fs.Parse([]string{"-name", "flag"}); err != nil {
		t.Fatal(err)
	}
	if err := Apply(fs, "X_", lookup); err != nil {
		t.Fatal(err)
	}
	if *conns != 7 || *name != "flag" || *wait != 3*time.Second {
		t.Fatalf("max-conns %d, name %q, wait %v: want 7 (env), flag (command line wins), 3s", *conns, *name, *wait)
	}
	env["X_MAX_CONNS"] = "many"
	fs2 := flag.NewFlagSet("t", flag.ContinueOnError)
	fs2.Int("max-conns", 1, "")
	_ = fs2.Parse(nil)
	if err := Apply(fs2, "X_", lookup); err == nil {
		t.Fatal("a bad value in the environment was accepted")
	}
}
