// Package tuning is edgehub's host profile for 100K+ sockets per node and
// the check of a host against it.
//
// The profile is a set of files an operator installs as they are:
// sysctl.d/99-edgehub.conf, limits.d/99-edgehub.conf and the systemd units
// in systemd/. They are embedded here (Files) so that the wanted values have
// one source: Check reads the sysctl file's values and its "check:"
// annotations, scripts/apply-tuning.sh reads the same file, and
// `edgehub tune check -conns N` runs the check wherever the node runs.
//
// Check reads the host through a Host (LocalHost reads /proc/sys, the
// process's RLIMIT_NOFILE and /proc/meminfo) and returns a Report; it
// never writes anything. All functions are safe for concurrent use.
package tuning
