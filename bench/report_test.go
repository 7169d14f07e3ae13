package bench

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFormatCell(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 2400: "2400", 427.93: "427.9", 1.2345: "1.234", 0.05: "0.05", math.NaN(): "-"} {
		if got := formatCell(v); got != want {
			t.Errorf("formatCell(%v) = %q, want %q", v, got, want)
		}
	}
}

func sampleReport() *Report {
	return &Report{Scenario: "throughput", Target: "fairway", Columns: []string{"accepted/s", "peak_MiB"},
		Rows:  []Row{{Label: "4KB", Cells: []float64{400, math.NaN()}}, {Label: "100KB", Cells: []float64{100, 200}}},
		Notes: []string{"unsigned"}}
}

func TestWriteTable(t *testing.T) {
	var b bytes.Buffer
	if err := sampleReport().WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	lines := strings.Split(out, "\n")
	if lines[0] != "== throughput on fairway ==" {
		t.Errorf("title line %q", lines[0])
	}
	if !strings.Contains(lines[1], "accepted/s") || !strings.Contains(lines[2], "4KB") || !strings.HasSuffix(strings.TrimRight(lines[2], " "), "-") {
		t.Errorf("table:\n%s", out)
	}
	// Right-aligned columns: every row line has the same length.
	if len(strings.TrimRight(lines[2], " ")) != len(strings.TrimRight(lines[3], " ")) {
		t.Errorf("rows not aligned:\n%s", out)
	}
	if !strings.Contains(out, "note: unsigned") {
		t.Errorf("note missing:\n%s", out)
	}
}

func TestWriteJSONNaNIsNull(t *testing.T) {
	dir := t.TempDir()
	path, err := sampleReport().WriteJSON(dir)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(path) != "throughput-fairway.json" {
		t.Errorf("path %s", path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var back struct {
		Rows []struct {
			Label string
			Cells []*float64
		}
	}
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("%v in %s", err, b)
	}
	if back.Rows[0].Cells[1] != nil || back.Rows[0].Cells[0] == nil || *back.Rows[0].Cells[0] != 400 {
		t.Errorf("cells %s", b)
	}
}

func TestCompareRatio(t *testing.T) {
	a := sampleReport()
	b := sampleReport()
	b.Target = "postfix"
	b.Rows[0].Cells[0] = 800
	b.Rows[1].Cells[1] = 0
	c := Compare(a, b)
	if len(c.Rows) != 6 {
		t.Fatalf("%d rows, want 2 per input row plus a ratio each", len(c.Rows))
	}
	ratio := c.Rows[2]
	if ratio.Label != "4KB fairway/postfix" || ratio.Cells[0] != 0.5 || !math.IsNaN(ratio.Cells[1]) {
		t.Errorf("ratio row %+v", ratio)
	}
	if !math.IsNaN(c.Rows[5].Cells[1]) {
		t.Errorf("division by zero gave %v, want NaN", c.Rows[5].Cells[1])
	}
}
