package queue

import (
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
)

// Rules route a question to a queue and a model by its content: the first
// rule that matches wins, else the default. A rule matches when every
// condition it has holds: its regular expression finds a match, the
// question is at least MinLength and at most MaxLength bytes.
type Rules struct {
	Default Route
	rules   []rule
}

// Route is where a question goes.
type Route struct {
	Queue string `json:"queue"`
	Model string `json:"model"` // used when the client names none; "" is the worker's -model
}

type rule struct {
	name string
	re   *regexp.Regexp
	min  int
	max  int
	Route
}

type rulesFile struct {
	Default Route `json:"default"`
	Rules   []struct {
		Name      string `json:"name"`
		Pattern   string `json:"pattern"`
		MinLength int    `json:"minLength"`
		MaxLength int    `json:"maxLength"`
		Route
	} `json:"rules"`
}

//go:embed rules.default.json
var defaultRules []byte

// ErrRules is wrapped by every error of a rules file.
var ErrRules = errors.New("bad AI routing rules")

// DefaultRules are the shipped rules (rules.default.json): code
// questions, creative writing and short questions get their own queues
// and models.
func DefaultRules() *Rules {
	r, err := ParseRules(defaultRules)
	if err != nil {
		panic(err) // the embedded file is checked by the tests
	}
	return r
}

// LoadRules reads a rules file; "" gives DefaultRules.
func LoadRules(path string) (*Rules, error) {
	if path == "" {
		return DefaultRules(), nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrRules, err)
	}
	return ParseRules(b)
}

// ParseRules reads rules in the JSON format of rules.default.json.
func ParseRules(b []byte) (*Rules, error) {
	var f rulesFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrRules, err)
	}
	r := &Rules{Default: f.Default}
	if r.Default.Queue == "" {
		r.Default.Queue = "default"
	}
	for i, fr := range f.Rules {
		if fr.Queue == "" {
			return nil, fmt.Errorf("%w: rule %d (%s) has no queue", ErrRules, i, fr.Name)
		}
		if fr.Pattern == "" && fr.MinLength <= 0 && fr.MaxLength <= 0 {
			return nil, fmt.Errorf("%w: rule %d (%s) has no condition", ErrRules, i, fr.Name)
		}
		ru := rule{name: fr.Name, min: fr.MinLength, max: fr.MaxLength, Route: fr.Route}
		if fr.Pattern != "" {
			re, err := regexp.Compile(fr.Pattern)
			if err != nil {
				return nil, fmt.Errorf("%w: rule %d (%s): %v", ErrRules, i, fr.Name, err)
			}
			ru.re = re
		}
		r.rules = append(r.rules, ru)
	}
	return r, nil
}

// Route returns where message goes.
func (r *Rules) Route(message string) Route {
	for i := range r.rules {
		ru := &r.rules[i]
		if (ru.re == nil || ru.re.MatchString(message)) &&
			(ru.min <= 0 || len(message) >= ru.min) &&
			(ru.max <= 0 || len(message) <= ru.max) {
			return ru.Route
		}
	}
	return r.Default
}

// Queues lists every queue the rules can route to, the default first.
func (r *Rules) Queues() []string {
	qs := []string{r.Default.Queue}
	for _, ru := range r.rules {
		if !slices.Contains(qs, ru.Queue) {
			qs = append(qs, ru.Queue)
		}
	}
	return qs
}

// route sets job's Queue, and its Model when the client named none.
func (r *Rules) route(job *Job) {
	rt := r.Route(job.Message)
	job.Queue = rt.Queue
	if job.Model == "" {
		job.Model = rt.Model
	}
}
