package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// goBench is one line of `go test -bench -benchmem` output.
type goBench struct {
	Pkg, Name               string
	NsPerOp, BPerOp, Allocs float64
	HasMem                  bool
}

// parseGoBench reads benchmark result lines and the package each is in.
func parseGoBench(out []byte) []goBench {
	var res []goBench
	pkg := ""
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if p, ok := strings.CutPrefix(line, "pkg: "); ok {
			pkg = p
			continue
		}
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		b := goBench{Pkg: pkg, Name: strings.TrimPrefix(f[0], "Benchmark")}
		if i := strings.LastIndexByte(b.Name, '-'); i > 0 {
			if _, err := strconv.Atoi(b.Name[i+1:]); err == nil {
				b.Name = b.Name[:i] // the GOMAXPROCS suffix
			}
		}
		ok := false
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			switch f[i+1] {
			case "ns/op":
				b.NsPerOp, ok = v, true
			case "B/op":
				b.BPerOp, b.HasMem = v, true
			case "allocs/op":
				b.Allocs = v
			}
		}
		if ok {
			res = append(res, b)
		}
	}
	return res
}

// runGoBench runs the module's Go benchmarks in root.
func runGoBench(root, benchtime string) ([]goBench, error) {
	args := []string{"test", "-run", "^$", "-bench", ".", "-benchmem", "-benchtime", benchtime, "./..."}
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return parseGoBench(out), nil
}

// addGoBench adds the Go benchmarks to the table, with the agent library's
// read path as the baseline of the daemon's frame loop.
func addGoBench(t *table, res []goBench) {
	var agentRead float64
	for _, b := range res {
		if b.Name == "AgentReadPoint" {
			agentRead = b.NsPerOp
		}
	}
	for _, b := range res {
		r := row{Measure: "Go: " + b.Name, Result: fmt.Sprintf("%.0f ns/op", b.NsPerOp)}
		if b.HasMem {
			r.Result += fmt.Sprintf(", %.0f B/op, %.0f allocs/op", b.BPerOp, b.Allocs)
		}
		if b.Name == "ConnPoint" && agentRead > 0 {
			r.Baseline = fmt.Sprintf("AgentReadPoint %.0f ns/op", agentRead)
			r.Ratio = fmt.Sprintf("%.2fx the speed", agentRead/b.NsPerOp)
		}
		if b.Name == "HandlerPoint/no-change/ok" || b.Name == "HandlerPoint/no-change/critical" || b.Name == "ConnPoint" {
			r.Target = "0 allocs/op"
			r.Verdict = check(b.Allocs == 0)
		}
		t.add(r)
	}
}
