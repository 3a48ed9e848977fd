package deploy

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/edgehub/edgehub/cmd/edgehub/edgehubtest"
	"github.com/edgehub/edgehub/tuning"
)

// heartbeat is the node's default -heartbeat: a balancer must keep an idle
// WebSocket open longer than two of them.
const heartbeat = 25 * time.Second

// flagsOf returns the flag names of a binary, from its -h output.
func flagsOf(t *testing.T, bin string) map[string]bool {
	t.Helper()
	out, _ := exec.Command(bin, "-h").CombinedOutput() // -h exits 2 after printing
	flags := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s+-([a-z0-9-]+)`).FindAllStringSubmatch(string(out), -1) {
		flags[m[1]] = true
	}
	if len(flags) < 5 {
		t.Fatalf("%s -h lists no flags:\n%s", bin, out)
	}
	return flags
}

type binaries struct{ node, worker map[string]bool }

func build(t *testing.T) binaries {
	t.Helper()
	if testing.Short() {
		t.Skip("skipped in -short mode: builds edgehub and edgehub-worker")
	}
	return binaries{
		node:   flagsOf(t, edgehubtest.Build(t, "cmd/edgehub", "edgehub")),
		worker: flagsOf(t, edgehubtest.Build(t, "cmd/edgehub-worker", "edgehub-worker")),
	}
}

// checkArgs: every -flag in args and every EDGEHUB_* variable is one the
// binary has (EDGEHUB_<FLAG> for the node, EDGEHUB_WORKER_<FLAG> for the
// worker).
func (b binaries) checkArgs(t *testing.T, where string, worker bool, args []string, env []string) {
	t.Helper()
	flags, prefix := b.node, "EDGEHUB_"
	if worker {
		flags, prefix = b.worker, "EDGEHUB_WORKER_"
	}
	for _, a := range args {
		if name, ok := strings.CutPrefix(a, "-"); ok && !flags[strings.SplitN(name, "=", 2)[0]] {
			t.Errorf("%s: flag %s is not one of the binary's", where, a)
		}
	}
	for _, e := range env {
		name, ok := strings.CutPrefix(e, prefix)
		if !strings.HasPrefix(e, "EDGEHUB_") {
			continue // OPENAI_API_KEY and such
		}
		if !ok || !flags[strings.ReplaceAll(strings.ToLower(name), "_", "-")] {
			t.Errorf("%s: %s is not the twin of a flag of the binary", where, e)
		}
	}
}

// flagValue is the value of -name in args ("-name v" or "-name=v").
func flagValue(args []string, name string) (string, bool) {
	for i, a := range args {
		if a == "-"+name && i+1 < len(args) {
			return args[i+1], true
		}
		if v, ok := strings.CutPrefix(a, "-"+name+"="); ok {
			return v, true
		}
	}
	return "", false
}

func drainOf(t *testing.T, where string, args []string) time.Duration {
	t.Helper()
	v, ok := flagValue(args, "drain-timeout")
	if !ok {
		t.Fatalf("%s: no -drain-timeout: the grace period must be compared with an explicit drain", where)
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		t.Fatalf("%s: -drain-timeout %q: %v", where, v, err)
	}
	return d
}

func readYAMLDocs(t *testing.T, path string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var docs []map[string]any
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for {
		var d map[string]any
		err := dec.Decode(&d)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		docs = append(docs, d)
	}
	return docs
}

// get walks a parsed YAML/JSON value by map keys and list indexes.
func get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			l, _ := v.([]any)
			if k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func strs(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, toString(x))
	}
	return out
}

func toString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case int:
		return strconv.Itoa(x)
	}
	return ""
}

func envNames(v any) []string {
	var out []string
	switch e := v.(type) {
	case []any: // Kubernetes: [{name: ..., value: ...}]
		for _, x := range e {
			out = append(out, toString(get(x, "name")))
		}
	case map[string]any: // compose: {NAME: value}
		for k := range e {
			out = append(out, k)
		}
	}
	return out
}

func TestKubernetes(t *testing.T) {
	b := build(t)
	profile := tuning.DefaultProfile()
	kinds := map[string]map[string]any{}
	for _, f := range []string{"k8s/node.yaml", "k8s/worker.yaml"} {
		for _, d := range readYAMLDocs(t, f) {
			kinds[toString(d["kind"])+"/"+toString(get(d, "metadata", "name"))] = d
		}
	}
	node := kinds["Deployment/edgehub"]
	if node == nil || kinds["Service/edgehub"] == nil || kinds["Service/edgehub-internal"] == nil ||
		kinds["PodDisruptionBudget/edgehub"] == nil || kinds["Deployment/edgehub-worker"] == nil {
		t.Fatalf("manifests lack a kind: have %v", keys(kinds))
	}
	spec := get(node, "spec", "template", "spec")
	c := get(spec, "containers", 0)
	args := strs(get(c, "args"))
	b.checkArgs(t, "k8s node", false, args, envNames(get(c, "env")))

	// Ports: the probes and Services name the ports the flags listen on.
	ports := map[string]string{}
	for _, p := range get(c, "ports").([]any) {
		ports[toString(get(p, "name"))] = toString(get(p, "containerPort"))
	}
	for flag, port := range map[string]string{"listen": "ws", "internal-listen": "internal"} {
		v, _ := flagValue(args, flag)
		if !strings.HasSuffix(v, ":"+ports[port]) {
			t.Errorf("-%s %q but port %s is %q", flag, v, port, ports[port])
		}
	}
	if p := get(c, "readinessProbe", "httpGet"); toString(get(p, "path")) != "/readyz" || toString(get(p, "port")) != "ws" {
		t.Errorf("readiness probe %v, want /readyz on ws", p)
	}
	if p := get(c, "livenessProbe", "httpGet"); toString(get(p, "path")) != "/healthz" || toString(get(p, "port")) != "ws" {
		t.Errorf("liveness probe %v, want /healthz on ws", p)
	}
	if toString(get(kinds["Service/edgehub"], "spec", "ports", 0, "targetPort")) != "ws" ||
		toString(get(kinds["Service/edgehub-internal"], "spec", "ports", 0, "targetPort")) != "internal" {
		t.Error("the Services do not target the ws and internal ports")
	}
	if pre := get(c, "lifecycle", "preStop", "exec", "command"); pre == nil || !strings.Contains(strings.Join(strs(pre), " "), "kill -TERM 1") {
		t.Errorf("preStop %v does not start the drain", pre)
	}

	// Timeouts: a drain longer than the grace period is cut off by SIGKILL.
	grace := time.Duration(get(spec, "terminationGracePeriodSeconds").(int)) * time.Second
	if drain := drainOf(t, "k8s node", args); drain >= grace {
		t.Errorf("-drain-timeout %v >= terminationGracePeriodSeconds %v", drain, grace)
	}
	// Liveness must not restart a node in the middle of a drain.
	live := get(c, "livenessProbe")
	if d := time.Duration(get(live, "periodSeconds").(int)*get(live, "failureThreshold").(int)) * time.Second; d <= grace {
		t.Errorf("liveness gives up after %v, within the grace period %v: it would restart a draining node", d, grace)
	}
	if mu := get(kinds["PodDisruptionBudget/edgehub"], "spec", "maxUnavailable"); mu != 1 {
		t.Errorf("PDB maxUnavailable %v, want 1", mu)
	}

	// Sysctls: the namespaced ones carry the profile's values.
	for _, s := range get(spec, "securityContext", "sysctls").([]any) {
		name, value := toString(get(s, "name")), toString(get(s, "value"))
		found := false
		for _, ps := range profile.Settings {
			if ps.Key == name {
				found = true
				var want []string
				for _, v := range ps.Values {
					want = append(want, strconv.FormatInt(v, 10))
				}
				if strings.Join(strings.Fields(value), " ") != strings.Join(want, " ") {
					t.Errorf("sysctl %s = %q, the profile has %q", name, value, strings.Join(want, " "))
				}
			}
		}
		if !found {
			t.Errorf("sysctl %s is not in the tuning profile", name)
		}
	}

	w := get(kinds["Deployment/edgehub-worker"], "spec", "template", "spec", "containers", 0)
	b.checkArgs(t, "k8s worker", true, strs(get(w, "args")), envNames(get(w, "env")))
}

func TestCompose(t *testing.T) {
	b := build(t)
	docs := readYAMLDocs(t, "docker-compose.yml")
	services, _ := get(docs[0], "services").(map[string]any)
	for _, name := range []string{"redis", "node1", "node2", "node3", "worker1", "worker2", "haproxy"} {
		if services[name] == nil {
			t.Fatalf("compose has no service %s", name)
		}
	}
	for name, s := range services {
		if !strings.HasPrefix(name, "node") && !strings.HasPrefix(name, "worker") {
			continue
		}
		worker := strings.HasPrefix(name, "worker")
		args := strs(get(s, "command"))
		b.checkArgs(t, "compose "+name, worker, args, envNames(get(s, "environment")))
		grace, err := time.ParseDuration(toString(get(s, "stop_grace_period")))
		if err != nil {
			t.Errorf("compose %s: stop_grace_period: %v", name, err)
		}
		if !worker {
			if drain := drainOf(t, "compose "+name, args); drain >= grace {
				t.Errorf("compose %s: -drain-timeout %v >= stop_grace_period %v", name, drain, grace)
			}
			if v, _ := flagValue(args, "listen"); v != ":8080" {
				t.Errorf("compose %s: -listen %q, haproxy.cfg sends to :8080", name, v)
			}
		}
	}
}

// TestSystemdUnits: the units of tuning/systemd run flags the binaries
// have and stop later than the drain.
func TestSystemdUnits(t *testing.T) {
	b := build(t)
	for _, unit := range []string{"systemd/edgehub.service", "systemd/edgehub-worker.service"} {
		text, err := tuning.Files.ReadFile(unit)
		if err != nil {
			t.Fatal(err)
		}
		kv := map[string]string{}
		for _, line := range strings.Split(string(text), "\n") {
			if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
				kv[k] = v
			}
		}
		exe := strings.Fields(kv["ExecStart"])
		worker := strings.Contains(unit, "worker")
		b.checkArgs(t, unit, worker, exe[1:], nil)
		if kv["KillSignal"] != "SIGTERM" || kv["LimitNOFILE"] == "" {
			t.Errorf("%s: KillSignal %q, LimitNOFILE %q", unit, kv["KillSignal"], kv["LimitNOFILE"])
		}
		stop, err := time.ParseDuration(kv["TimeoutStopSec"])
		if err != nil {
			t.Fatalf("%s: TimeoutStopSec: %v", unit, err)
		}
		if !worker {
			if drain := drainOf(t, unit, exe[1:]); drain >= stop {
				t.Errorf("%s: -drain-timeout %v >= TimeoutStopSec %v", unit, drain, stop)
			}
			nofile, _ := strconv.Atoi(kv["LimitNOFILE"])
			if tuning.ConnsAllowed(uint64(nofile)) < 100000 {
				t.Errorf("%s: LimitNOFILE %d holds fewer than 100,000 connections", unit, nofile)
			}
		}
	}
}

// TestBalancerConfigs: haproxy -c and nginx -t accept the configs (with
// the certificate paths pointed at a throwaway certificate and the node
// names at 127.0.0.1), and they keep WebSockets open longer than two
// heartbeats, check /healthz, retry a draining node's 503 and stick.
func TestBalancerConfigs(t *testing.T) {
	hcfg := read(t, "haproxy/haproxy.cfg")
	ncfg := read(t, "nginx/nginx.conf")
	for _, want := range []string{"timeout tunnel 1h", "http-check send meth GET uri /healthz", "retry-on", " 503",
		"cookie ehnode insert", "alpn http/1.1"} {
		if !strings.Contains(hcfg, want) {
			t.Errorf("haproxy.cfg lacks %q", want)
		}
	}
	for _, want := range []string{"proxy_read_timeout 1h", "proxy_next_upstream error timeout http_503",
		"proxy_set_header Upgrade $http_upgrade", "hash $sticky consistent"} {
		if !strings.Contains(ncfg, want) {
			t.Errorf("nginx.conf lacks %q", want)
		}
	}
	if 2*heartbeat >= time.Hour {
		t.Errorf("two heartbeats (%v) outlast the balancers' 1h idle timeouts", 2*heartbeat)
	}

	dir := t.TempDir()
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed: the configs are not run through haproxy -c / nginx -t (scripts/install-test-deps.sh)")
	}
	cert, key, pem := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), filepath.Join(dir, "edgehub.pem")
	if out, err := exec.Command("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
		"-subj", "/CN=localhost", "-keyout", key, "-out", cert).CombinedOutput(); err != nil {
		t.Fatalf("openssl: %v\n%s", err, out)
	}
	both := append(must(os.ReadFile(cert)), must(os.ReadFile(key))...)
	if err := os.WriteFile(pem, both, 0o600); err != nil {
		t.Fatal(err)
	}
	local := regexp.MustCompile(`node([123]):8080`)
	for _, lb := range []struct{ bin, cfg, text string }{
		{"haproxy", "haproxy.cfg", strings.ReplaceAll(local.ReplaceAllString(hcfg, "127.0.0.1:1808$1"),
			"/usr/local/etc/haproxy/certs/edgehub.pem", pem)},
		{"nginx", "nginx.conf", strings.NewReplacer("/etc/nginx/certs/cert.pem", cert, "/etc/nginx/certs/key.pem", key).
			Replace(local.ReplaceAllString(ncfg, "127.0.0.1:1808$1"))},
	} {
		bin, err := exec.LookPath(lb.bin)
		if err != nil {
			bin = "/usr/sbin/" + lb.bin
		}
		if _, err := os.Stat(bin); err != nil {
			t.Errorf("%s not installed (scripts/install-test-deps.sh): %s not checked", lb.bin, lb.cfg)
			continue
		}
		path := filepath.Join(dir, lb.cfg)
		if err := os.WriteFile(path, []byte(lb.text), 0o644); err != nil {
			t.Fatal(err)
		}
		var cmd *exec.Cmd
		if lb.bin == "haproxy" {
			cmd = exec.Command(bin, "-c", "-f", path)
		} else {
			cmd = exec.Command(bin, "-t", "-c", path, "-e", filepath.Join(dir, "nginx-error.log"),
				"-g", "pid "+filepath.Join(dir, "nginx.pid")+";")
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s rejects %s: %v\n%s", lb.bin, lb.cfg, err, out)
		}
	}
}

// TestDashboard: the dashboard parses, and every edgehub_* series it
// queries is one the code registers.
func TestDashboard(t *testing.T) {
	var d struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal([]byte(read(t, "grafana/edgehub.json")), &d); err != nil {
		t.Fatal(err)
	}
	registered := map[string]bool{}
	series := regexp.MustCompile(`edgehub_[a-z_]+`)
	err := filepath.WalkDir("..", func(p string, e os.DirEntry, err error) error {
		if err != nil || e.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") ||
			strings.Contains(p, "third_party") {
			return err
		}
		for _, m := range series.FindAllString(read(t, p), -1) {
			registered[m] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"edgehub_connections_active", "edgehub_messages_in_total", "edgehub_messages_out_total",
		"edgehub_bytes_out_total", "edgehub_outbound_queued_bytes", "edgehub_slow_consumer_closes_total",
		"edgehub_bus_lag_seconds", "edgehub_redis_publish_duration_seconds", "edgehub_ai_jobs_total",
		"edgehub_ai_first_chunk_seconds", "edgehub_ai_queue_length"}
	used := map[string]bool{}
	for _, p := range d.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			for _, m := range series.FindAllString(tg.Expr, -1) {
				base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(m, "_bucket"), "_count"), "_sum")
				used[base] = true
				if !registered[base] {
					t.Errorf("panel %q queries %s, which no Go file registers", p.Title, m)
				}
			}
		}
	}
	for _, w := range want {
		if !used[w] {
			t.Errorf("the dashboard has no panel on %s", w)
		}
	}
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

func keys(m map[string]map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
