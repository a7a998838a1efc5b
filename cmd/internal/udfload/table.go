package main

import (
	"fmt"
	"io"
	"strings"
)

// row is one line of the results table.
type row struct {
	Measure, Result, Baseline, Ratio, Target, Verdict string
}

// table collects the results of a run and prints them as one Markdown table.
type table struct {
	rows []row
}

func (t *table) add(r row) { t.rows = append(t.rows, r) }

// check returns the verdict of a measured value against a target.
func check(ok bool) string {
	if ok {
		return "met"
	}
	return "**missed**"
}

func (t *table) print(w io.Writer) {
	head := row{"Measure", "Result", "Baseline (same run)", "Ratio", "Target", ""}
	all := append([]row{head}, t.rows...)
	width := make([]int, 6)
	for _, r := range all {
		for i, c := range r.cells() {
			width[i] = max(width[i], len(c))
		}
	}
	line := func(cells []string) {
		var b strings.Builder
		b.WriteString("|")
		for i, c := range cells {
			fmt.Fprintf(&b, " %-*s |", width[i], c)
		}
		fmt.Fprintln(w, b.String())
	}
	line(head.cells())
	sep := make([]string, 6)
	for i := range sep {
		sep[i] = strings.Repeat("-", width[i])
	}
	line(sep)
	for _, r := range t.rows {
		line(r.cells())
	}
}

func (r row) cells() []string {
	return []string{r.Measure, r.Result, r.Baseline, r.Ratio, r.Target, r.Verdict}
}

func kps(v float64) string { return fmt.Sprintf("%.0f k points/s", v/1000) }

func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }
