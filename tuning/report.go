package tuning

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// WriteText writes r for a person: one line per item, the memory the
// target needs, and a verdict that names the connections the host allows.
func (r Report) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "edgehub tune check: can this host hold %s connections per node?\n", count(r.Conns))
	fmt.Fprintf(&b, "(profile %s, sized for %s connections; its * values are scaled to %s)\n\n",
		SysctlFile, count(r.SizedFor), count(r.Conns))
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STATUS\tKIND\tSETTING\tCURRENT\tWANTED\tALLOWS")
	for _, it := range r.Items {
		kind, allows := "advise", ""
		if it.Hold {
			kind = "hold"
		}
		if it.Allows >= 0 {
			allows = count(it.Allows)
		}
		status := string(it.Status)
		if it.Hold && it.Status != OK && it.Status != Absent {
			status = strings.ToUpper(status)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", status, kind, it.Name, it.Current, it.Wanted, allows)
	}
	tw.Flush()
	fmt.Fprintf(&b, "\nMemory for %s connections: the kernel %s for the sockets (%s B each) and up to %s of TCP buffers\n"+
		"with every connection busy (%s B each, the tcp_mem sizing); the node %s (%s B per idle connection).\n\n",
		count(r.Conns), bytesIEC(r.KernelBytes), count(KernelBytesPerConn), bytesIEC(r.BufferBytes), count(BufferBytesPerConn),
		bytesIEC(r.NodeBytes), count(NodeBytesPerConn))
	if r.Holds() {
		fmt.Fprintf(&b, "YES: this host can hold %s connections per node", count(r.Conns))
		if r.Allowed >= 0 {
			fmt.Fprintf(&b, " (it allows %s: %s)", count(r.Allowed), r.Bound.Bound)
		}
		b.WriteString(".\n")
	} else {
		fmt.Fprintf(&b, "NO: this host cannot hold %s connections per node.", count(r.Conns))
		if r.Allowed >= 0 {
			fmt.Fprintf(&b, " It allows %s: %s.", count(r.Allowed), r.Bound.Bound)
		}
		b.WriteString("\n")
		for _, it := range r.Items {
			if it.Hold && it.Status != OK && it.Status != Absent {
				fmt.Fprintf(&b, "  to fix %s: %s\n", it.Name, it.Fix)
			}
		}
	}
	var advise []string
	for _, it := range r.Items {
		if !it.Hold && it.Status != OK && it.Status != Absent {
			advise = append(advise, it.Name)
		}
	}
	if len(advise) > 0 {
		fmt.Fprintf(&b, "Also off the profile (the connections are held, but reconnect storms and failures hurt): %s.\n"+
			"  fix: scripts/apply-tuning.sh (--dry-run shows the changes)\n", strings.Join(advise, ", "))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// count writes n with thousands separators: 100,000.
func count(n int) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return s
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
