package queue

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestDefaultRulesRoute(t *testing.T) {
	t.Parallel()
	r := DefaultRules()
	long := strings.Repeat("Tell me about the history of the city and its rivers. ", 3)
	tcs := []struct{ message, queue string }{
		{"Why does my Go function panic with a nil map error?", "code"},
		{"```python\nprint(1/0)\n```\nwhat happens here, and why exactly does it happen in the interpreter?", "code"},
		{"Please write a short poem about the sea and the wind over the harbour at dusk, in four lines", "creative"},
		{"What time is it in Tokyo?", "short"},
		{long, "default"},
	}
	for _, tc := range tcs {
		if got := r.Route(tc.message).Queue; got != tc.queue {
			t.Errorf("%q went to %q, want %q", tc.message, got, tc.queue)
		}
	}
	if q := r.Queues(); !slices.Equal(q, []string{"default", "code", "creative", "short"}) {
		t.Errorf("Queues = %q", q)
	}
	job := &Job{Message: "Why does my Go function panic with a nil map error?"}
	r.route(job)
	if job.Queue != "code" || job.Model != r.Route(job.Message).Model || job.Model == "" {
		t.Errorf("routed job %+v", job)
	}
	mine := &Job{Message: job.Message, Model: "mine"}
	r.route(mine)
	if mine.Model != "mine" {
		t.Errorf("the client's model was replaced: %+v", mine)
	}
}

func TestParseRules(t *testing.T) {
	t.Parallel()
	r, err := ParseRules([]byte(`{"rules":[{"queue":"big","minLength":10},{"queue":"q","pattern":"^x"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	for msg, want := range map[string]string{"x": "q", "xxxxxxxxxxxx": "big", "y": "default"} {
		if got := r.Route(msg).Queue; got != want {
			t.Errorf("%q: %q, want %q", msg, got, want)
		}
	}
	for _, bad := range []string{`{`, `{"rules":[{"pattern":"x"}]}`, `{"rules":[{"queue":"q"}]}`, `{"rules":[{"queue":"q","pattern":"("}]}`} {
		if _, err := ParseRules([]byte(bad)); !errors.Is(err, ErrRules) {
			t.Errorf("%s: %v, want ErrRules", bad, err)
		}
	}
	if _, err := LoadRules("/nonexistent/rules.json"); !errors.Is(err, ErrRules) {
		t.Errorf("a missing file: %v", err)
	}
}
