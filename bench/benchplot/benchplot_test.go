package benchplot

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

var pngMagic = []byte("\x89PNG\r\n\x1a\n")

func TestRender(t *testing.T) {
	t.Parallel()
	paths, err := filepath.Glob("testdata/*.json")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no sample results: %v", err)
	}
	results, err := Load(paths)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(results); i++ {
		if results[i-1].Date > results[i].Date {
			t.Errorf("results not sorted by date: %s before %s", results[i-1].Date, results[i].Date)
		}
	}
	dir := t.TempDir()
	written, err := Render(results, dir, ".png")
	if err != nil {
		t.Fatal(err)
	}
	if len(written) != 2 {
		t.Fatalf("wrote %v, want both charts", written)
	}
	for _, w := range written {
		b, err := os.ReadFile(w)
		if err != nil || !bytes.HasPrefix(b, pngMagic) || len(b) < 5000 {
			t.Errorf("%s: %d bytes, %v: not a PNG chart", w, len(b), err)
		}
	}
}

func TestRenderWithoutData(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := RSSVsConns(nil, filepath.Join(dir, "x.png")); !errors.Is(err, ErrNoData) {
		t.Errorf("RSSVsConns(nil) = %v, want ErrNoData", err)
	}
	if err := LatencyVsRate(nil, filepath.Join(dir, "y.png")); !errors.Is(err, ErrNoData) {
		t.Errorf("LatencyVsRate(nil) = %v, want ErrNoData", err)
	}
	written, err := Render(nil, dir, ".svg")
	if err != nil || len(written) != 0 {
		t.Errorf("Render(nil) = %v, %v", written, err)
	}
}

func TestLoadRejectsBadJSON(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(p, []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load([]string{p}); err == nil {
		t.Error("Load accepted broken JSON")
	}
}
