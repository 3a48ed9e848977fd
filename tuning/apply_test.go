package tuning

import (
	"bufio"
	"os/exec"
	"strings"
	"testing"
)

// TestApplyTuningDryRunAgrees runs scripts/apply-tuning.sh --dry-run on this
// host and checks that the script and Check read the profile alike: at the
// profile's own sizing, a setting Check finds off is one the script would
// change, and one Check finds ok the script leaves alone.
func TestApplyTuningDryRunAgrees(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	out, err := exec.Command("bash", "../scripts/apply-tuning.sh", "--dry-run").CombinedOutput()
	if err != nil {
		t.Fatalf("apply-tuning.sh --dry-run: %v\n%s", err, out)
	}
	t.Logf("\n%s", out)
	said := map[string]string{} // key -> first word of its line
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) >= 2 {
			said[f[1]] = f[0]
		}
	}
	p := DefaultProfile()
	r := Check(p, LocalHost(), p.SizedFor)
	for _, it := range r.Items[:len(p.Settings)] {
		want := map[Status]string{OK: "ok", Absent: "absent"}[it.Status]
		if want == "" {
			want = "would"
		}
		if said[it.Name] != want {
			t.Errorf("%s: check says %s (current %s, wanted %s), the script says %q", it.Name, it.Status, it.Current, it.Wanted, said[it.Name])
		}
	}
}
