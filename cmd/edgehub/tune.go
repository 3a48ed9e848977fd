package main

import (
	"flag"
	"fmt"
	"io"
	"io/fs"

	"github.com/edgehub/edgehub/tuning"
)

const tuneUsage = `usage:
  edgehub tune check [-conns N]   check this host against the tuning profile for N
                                  connections per node; exit 1 when it cannot hold them
  edgehub tune print FILE         print a file of the embedded profile (FILE: one of
                                  %s)
`

// tuneMain is `edgehub tune ...`; it returns the exit code: 0 the host
// holds the target, 1 it does not, 2 a usage error.
func tuneMain(args []string, stdout, stderr io.Writer) int {
	files, _ := fs.Glob(tuning.Files, "*/*")
	usage := func() int { fmt.Fprintf(stderr, tuneUsage, files); return 2 }
	if len(args) == 0 {
		return usage()
	}
	switch args[0] {
	case "check":
		fset := flag.NewFlagSet("edgehub tune check", flag.ContinueOnError)
		fset.SetOutput(stderr)
		conns := fset.Int("conns", 100000, "connections per node process the host should hold")
		if err := fset.Parse(args[1:]); err != nil || fset.NArg() > 0 || *conns <= 0 {
			return usage()
		}
		r := tuning.Check(tuning.DefaultProfile(), tuning.LocalHost(), *conns)
		if err := r.WriteText(stdout); err != nil {
			fmt.Fprintln(stderr, "edgehub tune:", err)
			return 1
		}
		if !r.Holds() {
			return 1
		}
		return 0
	case "print":
		if len(args) != 2 {
			return usage()
		}
		b, err := tuning.Files.ReadFile(args[1])
		if err != nil {
			fmt.Fprintf(stderr, "edgehub tune print: no %q in the profile\n", args[1])
			return usage()
		}
		_, _ = stdout.Write(b)
		return 0
	}
	return usage()
}
