package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// CPU time per call. On a shared 2-vCPU host, calls/s swing with what
// else runs (host steal, other test suites), but the CPU time a server
// spends per call moves far less: it is the cost of the path, whatever the
// machine gave it. A load run with a pid reads the CPU time (utime + stime,
// every thread) of the server, separately of the sum over its descendants
// (mcpgate's sandboxed stdio upstreams), and of the load generator itself,
// which competes for the same CPUs; once as the measured window begins and
// once as it ends.

// defaultUserHZ is the unit of the times in /proc/PID/stat when the
// auxiliary vector does not say: USER_HZ, what `getconf CLK_TCK` prints.
// It is part of the kernel's ABI, independent of its internal CONFIG_HZ,
// and 100 on every architecture Go runs Linux on (amd64 and arm64 among
// them).
const defaultUserHZ = 100

// atClkTck is the auxiliary vector entry holding USER_HZ (AT_CLKTCK in
// <elf.h>); glibc's sysconf(_SC_CLK_TCK), and so getconf, reads it there.
const atClkTck = 17

// clockTicks returns the clock ticks per second of /proc/PID/stat's times,
// from the auxiliary vector at auxvPath (normally /proc/self/auxv), or
// defaultUserHZ when it cannot be read or lacks the entry.
func clockTicks(auxvPath string) int64 {
	b, err := os.ReadFile(auxvPath)
	if err != nil {
		return defaultUserHZ
	}
	if hz, ok := parseAuxvClockTicks(b); ok {
		return hz
	}
	return defaultUserHZ
}

// parseAuxvClockTicks finds AT_CLKTCK in an auxiliary vector: pairs of
// native words (type, value), ended by type 0 (AT_NULL).
func parseAuxvClockTicks(b []byte) (int64, bool) {
	word := strconv.IntSize / 8
	read := func(b []byte) uint64 {
		if word == 8 {
			return binary.NativeEndian.Uint64(b)
		}
		return uint64(binary.NativeEndian.Uint32(b))
	}
	for ; len(b) >= 2*word; b = b[2*word:] {
		switch key, val := read(b), read(b[word:]); key {
		case 0:
			return 0, false
		case atClkTck:
			if val == 0 || val > 1<<20 {
				return 0, false // not a clock rate
			}
			return int64(val), true
		}
	}
	return 0, false
}

// procStat is what the generator reads from /proc/PID/stat.
type procStat struct {
	PPid int
	// Ticks is utime + stime (fields 14 and 15): the CPU time the process
	// has used in user and kernel mode, all its threads, in clock ticks.
	// It does not include cutime/cstime (children it has waited for).
	Ticks uint64
	// Start is starttime (field 22), in ticks after boot: with the pid, it
	// names one process across readings, so a reused pid is not taken for
	// the process that had it before.
	Start uint64
}

// Fields of /proc/PID/stat by their 1-based numbers in proc(5), as indexes
// into what follows comm: that starts at field 3 (state).
const (
	statPPid      = 4 - 3
	statUtime     = 14 - 3
	statStime     = 15 - 3
	statStartTime = 22 - 3
)

// parseStat extracts the parent, CPU time and start time from the text of
// /proc/PID/stat: "pid (comm) state ppid ...". comm, the name the process
// gave itself, may hold spaces and parentheses ("(sd-pam)", "a) b"), so
// the fields are counted from the last ')', not split from the start.
func parseStat(text string) (procStat, error) {
	open, end := strings.IndexByte(text, '('), strings.LastIndexByte(text, ')')
	if open < 0 || end < open {
		return procStat{}, errors.New("parse stat: no (comm)")
	}
	f := strings.Fields(text[end+1:])
	if len(f) <= statStartTime {
		return procStat{}, fmt.Errorf("parse stat: %d fields after comm, want at least %d", len(f), statStartTime+1)
	}
	ppid, err := strconv.Atoi(f[statPPid])
	if err != nil {
		return procStat{}, fmt.Errorf("parse stat ppid: %w", err)
	}
	var n [3]uint64
	for i, field := range []int{statUtime, statStime, statStartTime} {
		if n[i], err = strconv.ParseUint(f[field], 10, 64); err != nil {
			return procStat{}, fmt.Errorf("parse stat field %d: %w", field+3, err)
		}
	}
	return procStat{PPid: ppid, Ticks: n[0] + n[1], Start: n[2]}, nil
}

// readStat reads /proc/PID/stat under procRoot; pid 0 is the reader itself
// (/proc/self).
func readStat(procRoot string, pid int) (procStat, error) {
	return readProcFile(procRoot, pid, "stat", parseStat)
}

// cpuReading is one reading of a process's CPU time and of each of its
// live descendants', by pid.
type cpuReading struct {
	self     procStat
	children map[int]procStat
}

// readCPU reads each of pids and its descendants, the latter out of one
// scan of procRoot. A pid that cannot be read is an error; a descendant
// that exits mid-scan is left out.
func readCPU(procRoot string, pids ...int) ([]cpuReading, error) {
	out := make([]cpuReading, len(pids))
	for i, pid := range pids {
		st, err := readStat(procRoot, pid)
		if err != nil {
			return nil, err
		}
		out[i].self = st
	}
	parents, stats, err := scanProcs(procRoot, readStat, func(st procStat) int { return st.PPid })
	if err != nil {
		return nil, err
	}
	for i, pid := range pids {
		out[i].children = make(map[int]procStat)
		for _, c := range descendants(parents, pid) {
			out[i].children[c] = stats[c]
		}
	}
	return out, nil
}

// cpuDelta is the CPU time, in ticks, used between two readings of one
// process: its own, and the sum over its descendants, of which n counted.
//
// Only descendants present at both readings (same pid, same start time)
// count. One that started during the window, or exited during it, is left
// out: its CPU before the window cannot be told from its CPU in it, or its
// last ticks were never read (once reaped they go to its parent's cutime,
// which is not read either). mcpgate's sandboxed children live as long as
// the gateway, so in bench/run.sh nothing is lost; a short-lived helper
// would be undercounted.
func cpuDelta(start, end cpuReading) (self, children uint64, n int, err error) {
	if start.self.Start != end.self.Start {
		return 0, 0, 0, errors.New("the process was replaced during the window (its start time changed)")
	}
	for pid, e := range end.children {
		if s, ok := start.children[pid]; ok && s.Start == e.Start {
			children += ticksSince(s.Ticks, e.Ticks)
			n++
		}
	}
	return ticksSince(start.self.Ticks, end.self.Ticks), children, n, nil
}

// ticksSince is end - start, or 0 should a counter ever step back.
func ticksSince(start, end uint64) uint64 {
	if end < start {
		return 0
	}
	return end - start
}

// CPUUse is the CPU time spent during a load run's measured window, in the
// Summary's JSON (flattened into it). Milliseconds are totals over the
// window; microseconds per call divide them by the successful calls in it.
// The resolution is one clock tick (10 ms at 100 Hz) per reading.
type CPUUse struct {
	TicksPerSec int64   `json:"cpu_ticks_per_s"`
	SelfMs      float64 `json:"cpu_self_ms"`     // the server process (-pid)
	ChildrenMs  float64 `json:"cpu_children_ms"` // its descendants, summed
	Children    int     `json:"cpu_children"`    // descendants present at both readings
	// The -upstream-pid process and its descendants: a separate server the
	// calls pass through (mcpgate's url: upstream). Absent without one.
	UpstreamMs     float64 `json:"cpu_upstream_ms,omitempty"`
	LoadgenMs      float64 `json:"cpu_loadgen_ms"` // this generator, all its threads
	PerCallSelf    float64 `json:"cpu_us_per_call_self"`
	PerCallChild   float64 `json:"cpu_us_per_call_children"`
	PerCallUp      float64 `json:"cpu_us_per_call_upstream,omitempty"`
	PerCallLoadgen float64 `json:"cpu_us_per_call_loadgen"`
}

// cpuWindow is one end of the measured window: the server (and the
// upstream, if any), then the generator itself.
type cpuWindow struct {
	procs   []cpuReading
	loadgen procStat
}

func readCPUWindow(procRoot string, pids []int) (cpuWindow, error) {
	procs, err := readCPU(procRoot, pids...)
	if err != nil {
		return cpuWindow{}, err
	}
	self, err := readStat(procRoot, 0)
	if err != nil {
		return cpuWindow{}, err
	}
	return cpuWindow{procs: procs, loadgen: self}, nil
}

// readCPUWindowAt takes a reading at the time at (the start of the
// measured window) in the background. If stop closes first, it reads at
// once: the window was shorter than a timer's slack.
func readCPUWindowAt(procRoot string, pids []int, at time.Time, stop <-chan struct{}) <-chan cpuResult {
	out := make(chan cpuResult, 1)
	go func() {
		t := time.NewTimer(time.Until(at))
		defer t.Stop()
		select {
		case <-t.C:
		case <-stop:
		}
		w, err := readCPUWindow(procRoot, pids)
		out <- cpuResult{w, err}
	}()
	return out
}

type cpuResult struct {
	w   cpuWindow
	err error
}

// cpuUse turns the two ends of the window into the Summary's figures. The
// first of procs is the server; a second, if any, is the upstream, whose
// own CPU and its descendants' are summed.
func cpuUse(start, end cpuWindow, hz int64, calls int64) (*CPUUse, error) {
	if len(start.procs) != len(end.procs) || len(start.procs) == 0 {
		return nil, errors.New("measure cpu: mismatched readings")
	}
	self, children, n, err := cpuDelta(start.procs[0], end.procs[0])
	if err != nil {
		return nil, fmt.Errorf("measure cpu of the server: %w", err)
	}
	var upstream uint64
	if len(start.procs) > 1 {
		s, c, _, err := cpuDelta(start.procs[1], end.procs[1])
		if err != nil {
			return nil, fmt.Errorf("measure cpu of the upstream: %w", err)
		}
		upstream = s + c
	}
	loadgen := ticksSince(start.loadgen.Ticks, end.loadgen.Ticks)
	ms := func(ticks uint64) float64 { return float64(ticks) * 1e3 / float64(hz) }
	perCall := func(ticks uint64) float64 {
		if calls <= 0 {
			return 0
		}
		return float64(ticks) * 1e6 / float64(hz) / float64(calls)
	}
	return &CPUUse{
		TicksPerSec: hz,
		SelfMs:      ms(self), ChildrenMs: ms(children), Children: n,
		UpstreamMs: ms(upstream), LoadgenMs: ms(loadgen),
		PerCallSelf: perCall(self), PerCallChild: perCall(children),
		PerCallUp: perCall(upstream), PerCallLoadgen: perCall(loadgen),
	}, nil
}
