package main

// The AI offload end to end: edgehub nodes on a real redis-server, the
// edgehub-worker binary answering from the queue (echo, or the SDK
// backends against queue/llmtest's local OpenAI/Anthropic server), and Go
// clients checking what PROTOCOL.md promises: only one's own answer,
// complete, seq without gaps or duplicates, reset: true after a retry.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgehub/edgehub/cmd/edgehub/edgehubtest"
	"github.com/edgehub/edgehub/fanout/redistest"
	"github.com/edgehub/edgehub/queue/llmtest"
)

// worker is one edgehub-worker process, killed by pid at cleanup.
type worker struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// startWorker runs the worker binary bin with -redis url and args.
func startWorker(t testing.TB, bin, url string, args ...string) *worker {
	t.Helper()
	w := &worker{out: &syncBuffer{}, done: make(chan struct{})}
	w.cmd = exec.Command(bin, append([]string{"-redis", url, "-listen", ""}, args...)...)
	w.cmd.Env = []string{"PATH=/usr/bin:/bin"} // no EDGEHUB_WORKER_* or SDK variables from the developer
	w.cmd.Stdout, w.cmd.Stderr = w.out, w.out
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = w.cmd.Wait(); close(w.done) }()
	t.Cleanup(func() {
		w.kill(t)
		if t.Failed() {
			t.Logf("edgehub-worker %v output:\n%s", args, w.out.String())
		}
	})
	// Ready once it has joined the groups: its log line says so.
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(w.out.String(), "edgehub-worker answering") {
		select {
		case <-w.done:
			t.Fatalf("edgehub-worker exited: %s", w.out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("edgehub-worker did not start: %s", w.out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return w
}

// kill is kill -9 of this worker's process.
func (w *worker) kill(t testing.TB) {
	select {
	case <-w.done:
		return
	default:
	}
	_ = w.cmd.Process.Kill()
	select {
	case <-w.done:
	case <-time.After(10 * time.Second):
		t.Errorf("edgehub-worker pid %d did not exit after SIGKILL", w.cmd.Process.Pid)
	}
}

func workerBinary(t *testing.T) string {
	t.Helper()
	return edgehubtest.Build(t, "cmd/edgehub-worker", "edgehub-worker")
}

// answer is what one client got for one job.
type answer struct {
	words  []string // the current attempt's contents
	resets int      // chunks with reset: true
	failed string   // the ai-error, if the job failed
}

// readAnswer reads c's frames for job until done or ai-error, failing on a
// chunk of another job, a gap or duplicate within an attempt, or a reset
// that does not restart at seq 0. It must run on the test goroutine.
func readAnswer(t *testing.T, c *wsClient, job string, from int64) answer {
	t.Helper()
	a, err := readAnswerErr(c, job, from)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// readAnswerErr is readAnswer for goroutines.
func readAnswerErr(c *wsClient, job string, from int64) (answer, error) {
	var a answer
	next := from
	for {
		m, err := c.read(30 * time.Second)
		if err != nil {
			return a, fmt.Errorf("job %s after seq %d: %v", job, next-1, err)
		}
		switch m.Type {
		case "ai-error":
			a.failed = string(m.field("error"))
			return a, nil
		case "ai-chunk":
		default:
			continue
		}
		if got := string(m.field("job")); got != `"`+job+`"` {
			return a, fmt.Errorf("a chunk of another job %s: %s", got, m)
		}
		seq, _ := m.numOK("seq")
		if string(m.field("reset")) == "true" {
			if seq != 0 {
				return a, fmt.Errorf("reset chunk with seq %d: %s", seq, m)
			}
			a.resets++
			a.words, next = nil, 0
		}
		if seq != next {
			return a, fmt.Errorf("seq %d, want %d: %s", seq, next, m)
		}
		next++
		var content string
		fmt.Sscanf(string(m.field("content")), "%q", &content)
		a.words = append(a.words, strings.TrimSpace(content))
		if string(m.field("done")) == "true" {
			return a, nil
		}
	}
}

// ask sends ai-query and returns the job id and its queue.
func ask(t *testing.T, c *wsClient, message string) (string, string) {
	t.Helper()
	c.sendJSON(t, map[string]any{"type": "ai-query", "message": message})
	q := c.expect(t, "queued")
	return q.str(t, "job"), q.str(t, "queue")
}

// Two nodes, two echo workers, 200 clients asking at once.
func TestAIFleetManyClients(t *testing.T) {
	skipFleetShort(t)
	t.Parallel()
	srv := redistest.Start(t)
	nodes := fleet(t, srv.URL(), 2)
	bin := workerBinary(t)
	for i := range 2 {
		startWorker(t, bin, srv.URL(), "-consumer", fmt.Sprintf("w%d", i), "-concurrency", "32", "-echo-delay", "1ms")
	}
	const clients = 200
	conns := make([]*wsClient, clients)
	for i := range conns {
		conns[i] = dial(t, nodes[i%2])
	}
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			question := fmt.Sprintf("client %d asks alpha beta gamma delta %d", i, i*7)
			if err := c.sendErr(fmt.Sprintf(`{"type":"ai-query","message":%q}`, question)); err != nil {
				errs <- err
				return
			}
			var job string
			for job == "" {
				m, err := c.read(30 * time.Second)
				if err != nil {
					errs <- fmt.Errorf("client %d: no queued: %v", i, err)
					return
				}
				if m.Type == "queued" {
					fmt.Sscanf(string(m.field("job")), "%q", &job)
				}
			}
			a, err := readAnswerErr(c, job, 0)
			switch {
			case err != nil:
				errs <- fmt.Errorf("client %d: %v", i, err)
			case a.failed != "" || strings.Join(a.words, " ") != question || a.resets != 0:
				errs <- fmt.Errorf("client %d: answer %q (failed %s, %d resets), want %q", i, strings.Join(a.words, " "), a.failed, a.resets, question)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, c := range conns[:4] {
		if got := c.sync(t); len(got) != 0 {
			t.Errorf("more frames after the answer: %s", got[0])
		}
	}
}

// A code question lands on the code queue, and its worker asks the backend
// for the code queue's model; a worker of another queue never sees it.
func TestAIFleetRouting(t *testing.T) {
	skipFleetShort(t)
	t.Parallel()
	srv := redistest.Start(t)
	nodes := fleet(t, srv.URL(), 1)
	llm := llmtest.Start(t, llmtest.Behavior{Answer: "use a pointer receiver"})
	bin := workerBinary(t)
	startWorker(t, bin, srv.URL(), "-queues", "code", "-backend", "openai", "-backend-url", llm.OpenAIURL(), "-api-key", "k")
	c := dial(t, nodes[0])
	job, queue := ask(t, c, "Why does my Go function not modify the struct? func (s S) set() { s.x = 1 }")
	if queue != "code" {
		t.Fatalf("queued on %q, want code", queue)
	}
	if a := readAnswer(t, c, job, 0); strings.Join(a.words, " ") != "use a pointer receiver" {
		t.Fatalf("answer %q", a.words)
	}
	r := llm.Next(time.Second)
	if r == nil || r.Model != "qwen2.5-coder" || !strings.Contains(r.Message, "func (s S)") {
		t.Fatalf("the backend was asked %+v", r)
	}
	// The worker acknowledges a job after its last chunk is out, so the
	// client may see done a moment before the job leaves the pending list.
	var problems []string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		code, _, body := httpDo(t, "GET", nodes[0].HTTP+"/api/queues", "", nil)
		var view struct {
			Queues []struct {
				Queue                      string
				Length, Pending, Consumers int
			}
		}
		if err := json.Unmarshal(body, &view); err != nil || code != 200 {
			t.Fatalf("/api/queues: %d %s", code, body)
		}
		problems = problems[:0]
		for _, q := range view.Queues {
			if want := map[bool]int{true: 1, false: 0}[q.Queue == "code"]; q.Consumers != want || q.Length != 0 || q.Pending != 0 {
				problems = append(problems, fmt.Sprintf("/api/queues %s: %+v, want %d consumers and nothing waiting", q.Queue, q, want))
			}
		}
		if len(problems) == 0 || time.Now().After(deadline) {
			break
		}
	}
	for _, p := range problems {
		t.Error(p)
	}
	page := metrics(t, nodes[0])
	if v, ok := metricValue(page, `edgehub_ai_queue_consumers{queue="code"}`); !ok || v != 1 {
		t.Errorf("edgehub_ai_queue_consumers{queue=\"code\"} = %v (%v)", v, ok)
	}
}

// kill -9 of a worker mid-answer: another one reclaims the job after the
// visibility timeout and the client gets the whole answer again from seq
// 0 with reset: true. A live worker whose answer outlasts the visibility
// timeout keeps its job.
func TestAIFleetWorkerKill(t *testing.T) {
	skipFleetShort(t)
	t.Parallel()
	srv := redistest.Start(t)
	nodes := fleet(t, srv.URL(), 2)
	words := strings.Fields(strings.Repeat("slow ", 29) + "end")
	llm := llmtest.Start(t, llmtest.Behavior{Answer: strings.Join(words, " "), Delay: 100 * time.Millisecond})
	bin := workerBinary(t)
	args := []string{"-backend", "openai", "-backend-url", llm.OpenAIURL(), "-api-key", "k", "-visibility-timeout", "1s"}
	first := startWorker(t, bin, srv.URL(), append(args, "-consumer", "first")...)

	c := dial(t, nodes[0])
	job, _ := ask(t, c, "tell me slowly")
	for i := range 3 {
		m := c.expect(t, "ai-chunk")
		if m.num(t, "seq") != int64(i) {
			t.Fatalf("chunk %d: %s", i, m)
		}
	}
	first.kill(t)
	killed := time.Now()
	startWorker(t, bin, srv.URL(), append(args, "-consumer", "second")...)
	a := readAnswer(t, c, job, 3)
	if a.resets != 1 || a.failed != "" || strings.Join(a.words, " ") != strings.Join(words, " ") {
		t.Fatalf("after the kill: %d resets, failed %s, answer %q", a.resets, a.failed, strings.Join(a.words, " "))
	}
	t.Logf("worker killed (kill -9) after 3 chunks; the client got reset: true at seq 0, then all %d chunks from the second worker, done %v after the kill (visibility timeout 1s)",
		len(a.words), time.Since(killed).Round(10*time.Millisecond))

	// 30 pieces 100ms apart: ~3s, three visibility timeouts, with two
	// live workers that could reclaim it.
	startWorker(t, bin, srv.URL(), append(args, "-consumer", "third")...)
	job, _ = ask(t, c, "tell me slowly again")
	if a := readAnswer(t, c, job, 0); a.resets != 0 || len(a.words) != len(words) {
		t.Fatalf("a long answer on a live worker was taken over: %d resets, %d words", a.resets, len(a.words))
	}
}

// A backend that always fails: ai-error after -max-attempts, and the job
// is in the dead-letter stream.
func TestAIFleetDeadLetter(t *testing.T) {
	skipFleetShort(t)
	t.Parallel()
	srv := redistest.Start(t)
	nodes := fleet(t, srv.URL(), 1)
	llm := llmtest.Start(t, llmtest.Behavior{FailStatus: 503})
	bin := workerBinary(t)
	startWorker(t, bin, srv.URL(), "-backend", "anthropic", "-backend-url", llm.AnthropicURL(), "-api-key", "k", "-model", "m", "-max-attempts", "2")
	c := dial(t, nodes[0])
	job, _ := ask(t, c, "anything")
	a := readAnswer(t, c, job, 0)
	if !strings.Contains(a.failed, "gave up after 2 attempts") || len(a.words) != 0 {
		t.Fatalf("failed %s, words %q", a.failed, a.words)
	}
	// Each attempt is one request and the SDK's one retry.
	if n := len(llm.Requests()); n != 4 {
		t.Errorf("%d backend requests, want 2 attempts of 2", n)
	}
	if dead := srv.MustDo("XRANGE", "eh:jobs:dead", "-", "+"); !strings.Contains(dead, job) {
		t.Fatalf("the job is not in eh:jobs:dead: %q", dead)
	}
}

// ai-cancel, and the asker's disconnect after -disconnect-grace, end the
// backend's HTTP request.
func TestAIFleetCancelAndDisconnect(t *testing.T) {
	skipFleetShort(t)
	t.Parallel()
	srv := redistest.Start(t)
	nodes := fleet(t, srv.URL(), 1)
	llm := llmtest.Start(t, llmtest.Behavior{Answer: strings.Repeat("slow ", 300), Delay: 30 * time.Millisecond})
	bin := workerBinary(t)
	startWorker(t, bin, srv.URL(), "-backend", "openai", "-backend-url", llm.OpenAIURL(), "-api-key", "k", "-disconnect-grace", "300ms")
	ended := func(what string, r *llmtest.Request) {
		t.Helper()
		select {
		case <-r.Ended:
		case <-time.After(10 * time.Second):
			t.Fatalf("the backend request did not end after the %s", what)
		}
	}

	c := dial(t, nodes[0])
	job, _ := ask(t, c, "cancel me")
	r := llm.Next(10 * time.Second)
	if r == nil {
		t.Fatal("no backend request")
	}
	c.expect(t, "ai-chunk")
	c.sendJSON(t, map[string]any{"type": "ai-cancel", "job": job})
	if a := readAnswer(t, c, job, 1); a.failed != `"cancelled"` {
		t.Fatalf("after ai-cancel: %+v", a)
	}
	ended("cancel", r)

	gone := dial(t, nodes[0])
	ask(t, gone, "I will leave")
	r = llm.Next(10 * time.Second)
	if r == nil {
		t.Fatal("no backend request")
	}
	gone.expect(t, "ai-chunk")
	gone.close()
	ended("disconnect", r)
}

// The client drops mid-answer and resumes on the other node; a refused
// resume (another user's job) changes nothing for the room's members.
func TestAIFleetResume(t *testing.T) {
	skipFleetShort(t)
	t.Parallel()
	srv := redistest.Start(t)
	nodes := fleet(t, srv.URL(), 2, "-secret", testSecret)
	words := strings.Fields(strings.Repeat("piece ", 24) + "last")
	llm := llmtest.Start(t, llmtest.Behavior{Answer: strings.Join(words, " "), Delay: 40 * time.Millisecond})
	bin := workerBinary(t)
	startWorker(t, bin, srv.URL(), "-backend", "openai", "-backend-url", llm.OpenAIURL(), "-api-key", "k")
	connect := func(n *edgehubtest.Node, sub string) *wsClient {
		c, err := dialWS(t, n, "token="+mint(t, testSecret, sub, time.Hour, []string{"*"}, []string{"*"}, true), nil)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	t.Run("on the other node", func(t *testing.T) {
		c := connect(nodes[0], "alice")
		job, _ := ask(t, c, "a long story")
		var held []string
		for range 5 {
			m := c.expect(t, "ai-chunk")
			held = append(held, strings.TrimSpace(m.str(t, "content")))
		}
		c.close()
		again := connect(nodes[1], "alice")
		again.sendJSON(t, map[string]any{"type": "ai-resume", "job": job, "seq": 4})
		a := readAnswer(t, again, job, 5)
		if a.failed != "" || strings.Join(append(held, a.words...), " ") != strings.Join(words, " ") {
			t.Fatalf("resumed answer %q + %q, failed %s", held, a.words, a.failed)
		}
	})

	t.Run("refused resume of a room answer", func(t *testing.T) {
		room := uniqueRoom("ai-resume")
		asker, member, other := connect(nodes[0], "alice"), connect(nodes[1], "bob"), connect(nodes[0], "mallory")
		for _, c := range []*wsClient{asker, member, other} {
			c.join(t, room)
		}
		asker.sendJSON(t, map[string]any{"type": "ai-query", "message": "for the room", "room": room})
		job := asker.expect(t, "queued").str(t, "job")
		m := other.expect(t, "ai-chunk")
		other.sendJSON(t, map[string]any{"type": "ai-resume", "job": job, "seq": m.num(t, "seq")})
		for _, c := range []*wsClient{asker, member} {
			a := readAnswer(t, c, job, 0)
			if a.failed != "" || strings.Join(a.words, " ") != strings.Join(words, " ") {
				t.Fatalf("a member's room answer after a refused resume: %q, failed %s", a.words, a.failed)
			}
		}
		var refused bool
		for !refused {
			m, err := other.read(10 * time.Second)
			if err != nil {
				t.Fatalf("no refusal: %v", err)
			}
			refused = m.Type == "error" && m.str(t, "code") == "forbidden"
		}
	})
}

// The single node, as a review found it: a refused ai-resume (another
// user's job id, which every room member sees in the chunks) stopped the
// room's answer for everyone on the node.
func TestAIRefusedResumeKeepsTheRoomAnswer(t *testing.T) {
	t.Parallel()
	n := edgehubtest.Start(t, "-secret", testSecret, "-echo-delay", "30ms")
	connect := func(sub string) *wsClient {
		c, err := dialWS(t, n, "token="+mint(t, testSecret, sub, time.Hour, []string{"*"}, []string{"*"}, true), nil)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	room := uniqueRoom("ai-refused")
	asker, member, other := connect("alice"), connect("bob"), connect("mallory")
	for _, c := range []*wsClient{asker, member, other} {
		c.join(t, room)
	}
	question := strings.TrimSpace(strings.Repeat("word ", 20))
	asker.sendJSON(t, map[string]any{"type": "ai-query", "message": question, "room": room})
	job := asker.expect(t, "queued").str(t, "job")
	other.expect(t, "ai-chunk")
	other.sendJSON(t, map[string]any{"type": "ai-resume", "job": job, "seq": 0})
	other.sendJSON(t, map[string]any{"type": "ai-cancel", "job": job})
	for _, c := range []*wsClient{asker, member} {
		if a := readAnswer(t, c, job, 0); a.failed != "" || strings.Join(a.words, " ") != question {
			t.Fatalf("the room's answer after a refused resume: %q, failed %s", a.words, a.failed)
		}
	}
}

// The in-process queue caps the jobs of one user (rate_limited) and the
// jobs waiting (unavailable).
func TestAIInProcessCaps(t *testing.T) {
	t.Parallel()
	n := edgehubtest.Start(t, "-echo-delay", "1s", "-ai-workers", "1", "-ai-max-per-user", "2", "-ai-max-waiting", "2")
	c := dial(t, n)
	long := strings.Repeat("slow ", 20)
	ask(t, c, long)
	c.expect(t, "ai-chunk") // the one worker answers it: the next ones wait
	ask(t, c, long)
	c.sendJSON(t, map[string]any{"type": "ai-query", "message": long})
	c.expectError(t, "rate_limited")
	ask(t, dial(t, n), long)
	late := dial(t, n)
	late.sendJSON(t, map[string]any{"type": "ai-query", "message": long})
	late.expectError(t, "unavailable")
}
