package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is one scenario's figures against one target: a table of numeric
// rows, notes that qualify them, and the raw details for the JSON file.
type Report struct {
	Scenario string    `json:"scenario"`
	Target   string    `json:"target"`
	Machine  string    `json:"machine"`
	Time     time.Time `json:"time"`
	Columns  []string  `json:"columns"`
	Rows     []Row     `json:"rows"`
	Notes    []string  `json:"notes,omitempty"`
	Details  any       `json:"details,omitempty"`
}

// Row is one labelled line of a report; Cells line up with Columns. NaN
// means not applicable.
type Row struct {
	Label string    `json:"label"`
	Cells []float64 `json:"cells"`
}

// MarshalJSON writes NaN cells as null.
func (r Row) MarshalJSON() ([]byte, error) {
	cells := make([]*float64, len(r.Cells))
	for i := range r.Cells {
		if !math.IsNaN(r.Cells[i]) && !math.IsInf(r.Cells[i], 0) {
			cells[i] = &r.Cells[i]
		}
	}
	return json.Marshal(struct {
		Label string     `json:"label"`
		Cells []*float64 `json:"cells"`
	}{r.Label, cells})
}

// formatCell renders a figure with up to 4 significant digits, "-" for NaN.
func formatCell(v float64) string {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return "-"
	case v == math.Trunc(v) && math.Abs(v) < 1e9:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case math.Abs(v) >= 100:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'g', 4, 64)
	}
}

// WriteTable prints the report as an aligned text table with its notes.
func (r *Report) WriteTable(w io.Writer) error {
	fmt.Fprintf(w, "== %s on %s ==\n", r.Scenario, r.Target)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "\t%s\t\n", strings.Join(r.Columns, "\t"))
	for _, row := range r.Rows {
		cells := make([]string, len(row.Cells))
		for i, c := range row.Cells {
			cells[i] = formatCell(c)
		}
		fmt.Fprintf(tw, "%s\t%s\t\n", row.Label, strings.Join(cells, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
	_, err := fmt.Fprintln(w)
	return err
}

// WriteJSON writes the report to dir/<scenario>-<target>.json and returns
// the path.
func (r *Report) WriteJSON(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("report dir: %w", err)
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return "", fmt.Errorf("encode report: %w", err)
	}
	name := fmt.Sprintf("%s-%s.json", r.Scenario, safeName(r.Target))
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return "", fmt.Errorf("write report: %w", err)
	}
	return path, nil
}

func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, s)
}

// Compare builds a report of a's and b's rows side by side (same scenario,
// same rows) with a ratio row a/b after each pair.
func Compare(a, b *Report) *Report {
	out := &Report{Scenario: a.Scenario, Target: a.Target + " vs " + b.Target, Machine: a.Machine,
		Time: a.Time, Columns: a.Columns}
	for i, ra := range a.Rows {
		if i >= len(b.Rows) {
			break
		}
		rb := b.Rows[i]
		ratio := Row{Label: ra.Label + " " + a.Target + "/" + b.Target, Cells: make([]float64, len(ra.Cells))}
		for j := range ra.Cells {
			ratio.Cells[j] = math.NaN()
			if j < len(rb.Cells) && rb.Cells[j] != 0 {
				ratio.Cells[j] = math.Round(ra.Cells[j]/rb.Cells[j]*100) / 100
			}
		}
		out.Rows = append(out.Rows,
			Row{Label: ra.Label + " " + a.Target, Cells: ra.Cells},
			Row{Label: rb.Label + " " + b.Target, Cells: rb.Cells},
			ratio)
	}
	for _, n := range a.Notes {
		out.Notes = append(out.Notes, a.Target+": "+n)
	}
	for _, n := range b.Notes {
		out.Notes = append(out.Notes, b.Target+": "+n)
	}
	return out
}

// Machine describes the host the figures came from: CPU model and count.
func Machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	host, _ := os.Hostname()
	return fmt.Sprintf("%s, %d CPUs, host %s", model, numCPU(), host)
}
