package main

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// rss is one reading of a server's resident memory in KiB (the unit of
// /proc/PID/status): the process itself and, separately, the sum over all
// its descendants. mcpgate runs its stdio upstreams as sandboxed children,
// whose memory is not in its own VmRSS; the two are kept apart so a table
// can show the gateway process alone and what its children add.
type rss struct {
	SelfKB     int64 `json:"self_kb"`
	ChildrenKB int64 `json:"children_kb"`
	Children   int   `json:"children"` // descendants found (threads excluded)
}

// procStatus is what the generator reads from /proc/PID/status.
type procStatus struct {
	RSSKB int64
	PPid  int
}

// parseStatus extracts VmRSS and PPid from the text of /proc/PID/status.
// A kernel thread or a zombie has no VmRSS line; that is a reading of 0,
// not an error, since a dying child must not fail the whole run.
func parseStatus(text string) (procStatus, error) {
	var st procStatus
	sawPPid := false
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(value)
		switch name {
		case "VmRSS":
			if len(fields) != 2 || fields[1] != "kB" {
				return procStatus{}, fmt.Errorf("parse VmRSS %q: want \"N kB\"", strings.TrimSpace(value))
			}
			n, err := strconv.ParseInt(fields[0], 10, 64)
			if err != nil {
				return procStatus{}, fmt.Errorf("parse VmRSS: %w", err)
			}
			st.RSSKB = n
		case "PPid":
			if len(fields) != 1 {
				return procStatus{}, fmt.Errorf("parse PPid %q: want one number", strings.TrimSpace(value))
			}
			n, err := strconv.Atoi(fields[0])
			if err != nil {
				return procStatus{}, fmt.Errorf("parse PPid: %w", err)
			}
			st.PPid, sawPPid = n, true
		}
	}
	if !sawPPid {
		return procStatus{}, errors.New("parse status: no PPid line")
	}
	return st, nil
}

// descendants returns every process below root in the parent map (pid to
// ppid), children before grandchildren. A cycle cannot happen in a real
// process table, but a pid is visited at most once so a bad map cannot
// loop forever.
func descendants(parents map[int]int, root int) []int {
	children := make(map[int][]int, len(parents))
	for pid, ppid := range parents {
		children[ppid] = append(children[ppid], pid)
	}
	seen := map[int]bool{root: true}
	var out []int
	queue := []int{root}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			if !seen[c] {
				seen[c] = true
				out = append(out, c)
				queue = append(queue, c)
			}
		}
	}
	return out
}

// readRSS reads pid's own VmRSS and the total of its descendants' under
// procRoot (normally /proc). Processes that vanish mid-scan are skipped.
func readRSS(procRoot string, pid int) (rss, error) {
	self, err := readStatus(procRoot, pid)
	if err != nil {
		return rss{}, err
	}
	parents, statuses, err := scanProcs(procRoot, readStatus, func(st procStatus) int { return st.PPid })
	if err != nil {
		return rss{}, err
	}
	r := rss{SelfKB: self.RSSKB}
	for _, c := range descendants(parents, pid) {
		r.ChildrenKB += statuses[c].RSSKB
		r.Children++
	}
	return r, nil
}

// scanProcs reads every process under procRoot with read and returns the
// parent map (pid to ppid, for descendants) and the readings by pid.
// Processes that exit mid-scan, or that read cannot read, are left out.
func scanProcs[T any](procRoot string, read func(procRoot string, pid int) (T, error), ppid func(T) int) (map[int]int, map[int]T, error) {
	entries, err := os.ReadDir(procRoot)
	if err != nil {
		return nil, nil, fmt.Errorf("list %s: %w", procRoot, err)
	}
	parents := make(map[int]int, len(entries))
	readings := make(map[int]T, len(entries))
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue // not a process: self, sys, meminfo...
		}
		r, err := read(procRoot, p)
		if err != nil {
			continue // exited since ReadDir, or not ours to read
		}
		parents[p] = ppid(r)
		readings[p] = r
	}
	return parents, readings, nil
}

func readStatus(procRoot string, pid int) (procStatus, error) {
	return readProcFile(procRoot, pid, "status", parseStatus)
}

// readProcFile reads /proc/PID/FILE under procRoot with parse; pid 0 is
// the reader itself (/proc/self).
func readProcFile[T any](procRoot string, pid int, file string, parse func(string) (T, error)) (T, error) {
	dir, name := "self", "self"
	if pid != 0 {
		dir = strconv.Itoa(pid)
		name = "pid " + dir
	}
	var zero T
	b, err := os.ReadFile(filepath.Join(procRoot, dir, file))
	if err != nil {
		return zero, fmt.Errorf("read %s of %s: %w", file, name, err)
	}
	st, err := parse(string(b))
	if err != nil {
		return zero, fmt.Errorf("read %s of %s: %w", file, name, err)
	}
	return st, nil
}

// settledRSS waits settle, then takes n readings interval apart and keeps
// the smallest of each figure: a Go server's RSS drifts down as the
// scavenger returns freed pages, so the minimum is the closest to what the
// server actually holds, and is not moved by a transient spike.
func settledRSS(ctx context.Context, procRoot string, pid int, settle time.Duration, n int, interval time.Duration) (rss, error) {
	if err := sleep(ctx, settle); err != nil {
		return rss{}, err
	}
	var best rss
	for i := range max(n, 1) {
		if i > 0 {
			if err := sleep(ctx, interval); err != nil {
				return rss{}, err
			}
		}
		r, err := readRSS(procRoot, pid)
		if err != nil {
			return rss{}, err
		}
		if i == 0 || r.SelfKB < best.SelfKB {
			best.SelfKB = r.SelfKB
		}
		if i == 0 || r.ChildrenKB < best.ChildrenKB {
			best.ChildrenKB, best.Children = r.ChildrenKB, r.Children
		}
	}
	return best, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return fmt.Errorf("wait: %w", ctx.Err())
	case <-t.C:
		return nil
	}
}

// peakSampler reads a server's RSS every interval in the background and
// keeps the highest reading taken at or after from (the measured window;
// warm-up is excluded).
type peakSampler struct {
	stop chan struct{}
	done chan struct{}
	mu   sync.Mutex
	peak rss
	n    int   // readings inside the window
	err  error // first failed reading
}

func startPeakSampler(procRoot string, pid int, interval time.Duration, from time.Time) *peakSampler {
	s := &peakSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case now := <-t.C:
				if now.Before(from) {
					continue
				}
				r, err := readRSS(procRoot, pid)
				s.mu.Lock()
				if err != nil {
					s.err = cmp.Or(s.err, err)
				} else {
					s.peak = peakOf(s.peak, r)
					s.n++
				}
				s.mu.Unlock()
			}
		}
	}()
	return s
}

// finish stops the sampler and returns the peak and how many readings made it.
func (s *peakSampler) finish() (rss, int, error) {
	close(s.stop)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak, s.n, s.err
}

// peakOf keeps the larger of each figure; the process itself and its
// children peak independently.
func peakOf(a, b rss) rss {
	out := a
	out.SelfKB = max(a.SelfKB, b.SelfKB)
	if b.ChildrenKB > a.ChildrenKB {
		out.ChildrenKB, out.Children = b.ChildrenKB, b.Children
	}
	return out
}

// perSessionKB is the memory each of n sessions added: the growth in KiB
// from before to after, divided by n. The result can be negative when the
// server returned more memory to the OS than the sessions took; that is
// reported as measured, not clamped, so noise stays visible.
func perSessionKB(before, after int64, n int) float64 {
	if n <= 0 {
		return 0
	}
	return float64(after-before) / float64(n)
}

// String is the human form, for -mode rss without -json.
func (r rss) String() string {
	return fmt.Sprintf("rss=%dKiB children=%d children_rss=%dKiB", r.SelfKB, r.Children, r.ChildrenKB)
}
