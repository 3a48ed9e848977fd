package main

import (
	"fmt"
	"strings"
	"syscall"
	"testing"

	"github.com/edgehub/edgehub/tuning"
)

func TestTuneSubcommand(t *testing.T) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		t.Fatal(err)
	}
	over := fmt.Sprint(tuning.ConnsAllowed(l.Max) + 1) // one past what this process's limit allows
	tcs := []struct {
		args []string
		code int
		out  string // in stdout
		err  string // in stderr
	}{
		{[]string{"check", "-conns", "1"}, 0, "YES: this host can hold 1 connections", ""},
		{[]string{"check", "-conns", over}, 1, "NO: this host cannot hold", ""},
		{[]string{"check", "-conns", "0"}, 2, "", "usage:"},
		{[]string{"check", "extra"}, 2, "", "usage:"},
		{[]string{}, 2, "", "usage:"},
		{[]string{"frobnicate"}, 2, "", "usage:"},
		{[]string{"print", "systemd/edgehub.service"}, 0, "LimitNOFILE=", ""},
		{[]string{"print", "nope"}, 2, "", `no "nope" in the profile`},
	}
	for _, tc := range tcs {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var stdout, stderr strings.Builder
			code := tuneMain(tc.args, &stdout, &stderr)
			if code != tc.code || !strings.Contains(stdout.String(), tc.out) || !strings.Contains(stderr.String(), tc.err) {
				t.Errorf("exit %d (want %d)\nstdout:\n%s\nstderr:\n%s", code, tc.code, stdout.String(), stderr.String())
			}
		})
	}
}
