package node

import (
	"syscall"

	"github.com/edgehub/edgehub/tuning"
)

// warnFileLimit logs a warning when the process's open-file limit is
// below what -max-conns needs: every connection is a file, so such a node
// fails accepts with EMFILE long before it answers 503 at -max-conns.
// Go has already raised the soft limit to the hard one at start.
func (n *Node) warnFileLimit() {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		n.log.Warn("cannot read the open-file limit", "err", err)
		return
	}
	if need := tuning.FilesNeeded(n.cfg.MaxConns); l.Cur < need {
		n.log.Warn("open-file limit below -max-conns: the node can hold fewer connections than it would accept",
			"nofile", l.Cur, "max_conns", n.cfg.MaxConns, "conns_allowed", tuning.ConnsAllowed(l.Cur),
			"fix", "raise LimitNOFILE or ulimit -n to at least -max-conns + 100, or lower -max-conns; see `edgehub tune check`")
	}
}
