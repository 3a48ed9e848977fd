// Package envflag gives every flag of a command an environment twin: the
// command's prefix followed by the flag's name in capitals with '-' as
// '_' (-max-conns of edgehub is EDGEHUB_MAX_CONNS). A flag given on the
// command line wins over its variable.
package envflag

import (
	"flag"
	"fmt"
	"strings"
)

// Apply sets each flag of fs not given on the command line from its
// environment twin, as lookup (os.LookupEnv) finds it. Call it after
// fs.Parse.
func Apply(fs *flag.FlagSet, prefix string, lookup func(string) (string, bool)) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] || err != nil {
			return
		}
		name := Name(prefix, f.Name)
		if v, ok := lookup(name); ok {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s=%q: %w", name, v, e)
			}
		}
	})
	return err
}

// Name is the environment variable of a flag.
func Name(prefix, flagName string) string {
	return prefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}
