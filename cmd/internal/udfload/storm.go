package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/influxdata/kapacitor/udf/agent"
)

// stormSettle is how long after the storm's last delivery its RSS is read
// again: the daemon should have given back what the storm took by then.
const stormSettle = 30 * time.Second

// storm starts a daemon with default settings, opens r.c.stormGroups
// incidents in one burst over the socket (every group CRITICAL at once,
// no pacing), and adds a row with its peak anonymous memory and RSS, its
// RSS 30 s after the last delivery, and the time to deliver them all,
// against the same daemon idle.
func (r *rig) storm() error {
	if r.c.stormGroups <= 0 || !r.c.runs("storm") {
		return nil
	}
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	d, err := r.startDaemon("storm", nil, append([]string{"--listen", addr}, strings.Fields(r.c.stormArgs)...)...)
	if err != nil {
		return err
	}
	defer d.Stop()
	idle, err := readProcMemory(d.Pid())
	if err != nil {
		return err
	}
	s := startSampler(d.Pid(), "http://"+addr+"/debug/pprof/heap", r.c.stormProfile != "")
	logf(r.stderr, "storm: %d incidents opened in one burst", r.c.stormGroups)
	seg := fmt.Sprintf("storm%d", memorySeq.Add(1))
	began := time.Now()
	cl, last, err := stormRun(d.Socket, r.e, seg, r.c.stormGroups)
	if err != nil {
		s.stop()
		return err
	}
	defer cl.close()
	during := s.peaks()
	took := last.Sub(began)
	time.Sleep(time.Until(last.Add(stormSettle)))
	after, err := readProcMemory(d.Pid())
	peak := s.stop()
	if err != nil {
		return err
	}
	file := fileSize(filepath.Join(r.dir, "storm", "outbox.db"))
	if r.c.stormProfile != "" && s.profile != nil {
		if err := os.WriteFile(r.c.stormProfile, s.profile, 0o644); err != nil {
			return fmt.Errorf("storm: write the heap profile: %w", err)
		}
		logf(r.stderr, "storm: heap profile at %s anonymous written to %s", mib(s.profileAnon), r.c.stormProfile)
	}
	for _, line := range strings.Split(d.Output(), "\n") {
		if strings.Contains(line, "shrank the outbox") || strings.Contains(line, "cannot shrink") {
			logf(r.stderr, "storm: the daemon logged: %s", line)
		}
	}
	logf(r.stderr, "storm: delivered in %s; peak anon %s, peak RSS %s (until the last delivery: anon %s, RSS %s); 30s after: RSS %s (anon %s), outbox file %s",
		took.Round(100*time.Millisecond), mib(peak.Anon), mib(peak.RSS), mib(during.Anon), mib(during.RSS), mib(after.RSS), mib(after.Anon), mib(file))
	r.t.add(row{
		Measure: fmt.Sprintf("Storm: %d incidents opened in one burst over the socket, defaults, idle endpoint (%s)", r.c.stormGroups, machine()),
		Result: fmt.Sprintf("peak anonymous %s, peak RSS %s; %s after the last delivery: RSS %s (anonymous %s, outbox file %s); all delivered in %s",
			mib(peak.Anon), mib(peak.RSS), stormSettle, mib(after.RSS), mib(after.Anon), mib(file), took.Round(100*time.Millisecond)),
		Baseline: fmt.Sprintf("idle daemon RSS %s (anonymous %s)", mib(idle.RSS), mib(idle.Anon)),
		Target:   "peak anonymous < 300 MiB, RSS after < 300 MiB",
		Verdict:  check(peak.Anon < 300<<20 && after.RSS < 300<<20),
	})
	return nil
}

// stormRun writes one CRITICAL point for each of groups distinct hosts as
// fast as the socket takes them, and returns once every event was
// delivered, with when the last was; the connection is still open.
func stormRun(socket string, e *endpoint, seg string, groups int) (_ *client, last time.Time, err error) {
	c, err := dial(socket)
	if err != nil {
		return nil, last, err
	}
	defer func() {
		if err != nil {
			c.close()
		}
	}()
	if err := c.init(nextTask("storm"), append(squadcastOptions(), urlOption(e, seg))); err != nil {
		return nil, last, err
	}
	const chunk = 10000
	t0 := time.Now().UnixNano()
	keepalive := time.Now()
	for from := 0; from < groups; from += chunk {
		f := &frames{}
		for i := from; i < min(from+chunk, groups); i++ {
			if err := f.add(&agent.Request{Message: &agent.Request_Point{Point: point(hostName(i), critIdle, t0+int64(i))}}); err != nil {
				return nil, last, err
			}
		}
		if err := c.writeFrames(f, 0, f.len()); err != nil {
			return nil, last, fmt.Errorf("%w (%v)", err, c.Err())
		}
		if time.Since(keepalive) > 5*time.Second { // as Kapacitor does, every timeout/2
			if _, err := c.keepalive(time.Now().UnixNano()); err != nil {
				return nil, last, err
			}
			keepalive = time.Now()
		}
	}
	if err := c.sync(10 * time.Minute); err != nil {
		return nil, last, err
	}
	last, ok := e.waitDone(seg, groups, 15*time.Minute)
	if !ok {
		_, done := e.counts(seg)
		return nil, last, fmt.Errorf("storm: only %d of %d events delivered", done, groups)
	}
	return c, last, nil
}

// sampler reads a process's memory every 50 ms and keeps the peaks; with
// a profile URL it also fetches a heap profile every 2 s and keeps the one
// taken at the highest anonymous memory.
type sampler struct {
	pid  int
	url  string
	quit chan struct{}
	wg   sync.WaitGroup

	mu          sync.Mutex
	peak        procMemory
	profile     []byte
	profileAnon int64
}

func startSampler(pid int, url string, profile bool) *sampler {
	s := &sampler{pid: pid, quit: make(chan struct{})}
	s.wg.Add(1)
	go s.sample()
	if profile {
		s.url = url
		s.wg.Add(1)
		go s.profiles()
	}
	return s
}

func (s *sampler) sample() {
	defer s.wg.Done()
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		if m, err := readProcMemory(s.pid); err == nil {
			s.mu.Lock()
			s.peak.Anon, s.peak.RSS = max(s.peak.Anon, m.Anon), max(s.peak.RSS, m.RSS, m.Peak)
			s.mu.Unlock()
		}
		select {
		case <-s.quit:
			return
		case <-t.C:
		}
	}
}

func (s *sampler) profiles() {
	defer s.wg.Done()
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-s.quit:
			return
		case <-t.C:
		}
		m, err := readProcMemory(s.pid)
		if err != nil {
			continue
		}
		res, err := http.Get(s.url)
		if err != nil {
			continue
		}
		var b bytes.Buffer
		_, err = io.Copy(&b, res.Body)
		res.Body.Close()
		s.mu.Lock()
		if err == nil && m.Anon > s.profileAnon {
			s.profile, s.profileAnon = b.Bytes(), m.Anon
		}
		s.mu.Unlock()
	}
}

// peaks returns the peaks so far.
func (s *sampler) peaks() procMemory {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak
}

// stop stops the sampling and returns the peaks.
func (s *sampler) stop() procMemory {
	close(s.quit)
	s.wg.Wait()
	return s.peaks()
}

// freeAddr returns a loopback address with a port free now.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// fileSize returns the size of a file, 0 if it cannot be read.
func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// machine describes the machine a run ran on: cores, memory, kernel.
func machine() string {
	desc := fmt.Sprintf("%d cores", runtime.NumCPU())
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		if _, err := fmt.Sscanf(strings.TrimPrefix(strings.SplitN(string(data), "\n", 2)[0], "MemTotal:"), "%d", &kb); err == nil {
			desc += fmt.Sprintf(", %.0f GiB", float64(kb)/(1<<20))
		}
	}
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		desc += ", Linux " + strings.TrimSpace(string(data))
	}
	return desc
}
