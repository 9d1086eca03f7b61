package main

import (
	"encoding/binary"
	"fmt"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"
)

// statLine is a /proc/PID/stat line with the given comm, ppid, utime,
// stime and starttime; every other field as a real process has them.
func statLine(pid int, comm string, ppid int, utime, stime, start uint64) string {
	return fmt.Sprintf("%d (%s) S %d %d %d 0 -1 4194560 1520 0 0 0 %d %d 0 0 20 0 9 0 %d 1334325248 6000 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n",
		pid, comm, ppid, ppid, ppid, utime, stime, start)
}

func TestParseStat(t *testing.T) {
	for _, tc := range []struct {
		name string
		text string
		want procStat
	}{
		{"normal", statLine(4242, "mcpgate", 17, 150, 50, 9000), procStat{PPid: 17, Ticks: 200, Start: 9000}},
		{"comm with spaces", statLine(7, "Web Content", 1, 3, 4, 5), procStat{PPid: 1, Ticks: 7, Start: 5}},
		// comm is whatever the process set (up to 15 bytes): parentheses
		// and a ") 9 9 " that looks like fields must not shift the count.
		{"comm with ')' inside", statLine(8, "a) 9 9 (b", 2, 10, 20, 30), procStat{PPid: 2, Ticks: 30, Start: 30}},
		{"comm of parentheses", statLine(9, "(sd-pam)", 3, 1, 1, 1), procStat{PPid: 3, Ticks: 2, Start: 1}},
		{"empty comm", statLine(10, "", 4, 0, 0, 2), procStat{PPid: 4, Start: 2}},
		// An old kernel's shorter line: starttime (22) is the last field read.
		{"just enough fields", "5 (x) R 1 1 1 0 -1 0 0 0 0 0 6 7 0 0 20 0 1 0 99", procStat{PPid: 1, Ticks: 13, Start: 99}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseStat(tc.text)
			if err != nil {
				t.Fatalf("parseStat(%q): %v", tc.text, err)
			}
			if got != tc.want {
				t.Errorf("parseStat(%q) = %+v, want %+v", tc.text, got, tc.want)
			}
		})
	}

	for _, tc := range []struct{ name, text string }{
		{"empty", ""},
		{"no comm", "5 x R 1 1 1 0 -1 0 0 0 0 0 6 7 0 0 20 0 1 0 99"},
		{"no closing paren", "5 (x R 1 1 1 0 -1 0 0 0 0 0 6 7 0 0 20 0 1 0 99"},
		{"paren order", "5 )x( R 1 1 1 0 -1 0 0 0 0 0 6 7 0 0 20 0 1 0 99"},
		{"missing fields", "5 (x) R 1 1 1 0 -1 0 0 0 0 0 6 7"},
		{"cut after comm", "5 (a b) "},
		{"bad ppid", "5 (x) R one 1 1 0 -1 0 0 0 0 0 6 7 0 0 20 0 1 0 99"},
		{"bad utime", "5 (x) R 1 1 1 0 -1 0 0 0 0 0 six 7 0 0 20 0 1 0 99"},
		{"negative stime", "5 (x) R 1 1 1 0 -1 0 0 0 0 0 6 -7 0 0 20 0 1 0 99"},
		{"bad starttime", "5 (x) R 1 1 1 0 -1 0 0 0 0 0 6 7 0 0 20 0 1 0 9x"},
	} {
		if got, err := parseStat(tc.text); err == nil {
			t.Errorf("%s: parseStat(%q) = %+v, want an error", tc.name, tc.text, got)
		}
	}
}

func FuzzParseStat(f *testing.F) {
	f.Add(statLine(4242, "mcpgate", 17, 150, 50, 9000))
	f.Add(statLine(8, "a) 9 9 (b", 2, 10, 20, 30))
	f.Add("5 (x) R 1 1 1 0 -1 0 0 0 0 0 6 7 0 0 20 0 1 0 99")
	f.Add("5 (x) R 1 1 1 0 -1 0 0 0 0 0 18446744073709551615 18446744073709551615 0 0 20 0 1 0 99")
	f.Add(")(")
	f.Add("")
	f.Fuzz(func(t *testing.T, text string) {
		st, err := parseStat(text)
		if err != nil && st != (procStat{}) {
			t.Errorf("parseStat(%q) returned %+v with error %v", text, st, err)
		}
	})
}

func TestParseAuxvClockTicks(t *testing.T) {
	word := strconv.IntSize / 8
	auxv := func(pairs ...uint64) []byte {
		var b []byte
		for _, v := range pairs {
			if word == 8 {
				b = binary.NativeEndian.AppendUint64(b, v)
			} else {
				b = binary.NativeEndian.AppendUint32(b, uint32(v))
			}
		}
		return b
	}
	for _, tc := range []struct {
		name   string
		b      []byte
		want   int64
		wantOK bool
	}{
		{"among others", auxv(6, 4096, atClkTck, 100, 23, 0, 0, 0), 100, true},
		{"another rate", auxv(atClkTck, 1024, 0, 0), 1024, true},
		{"absent", auxv(6, 4096, 0, 0), 0, false},
		{"after AT_NULL", auxv(0, 0, atClkTck, 100), 0, false},
		{"zero rate", auxv(atClkTck, 0, 0, 0), 0, false},
		{"truncated", auxv(6, 4096, atClkTck)[:2*word+1], 0, false},
		{"empty", nil, 0, false},
	} {
		got, ok := parseAuxvClockTicks(tc.b)
		if got != tc.want || ok != tc.wantOK {
			t.Errorf("%s: parseAuxvClockTicks = %d, %v; want %d, %v", tc.name, got, ok, tc.want, tc.wantOK)
		}
	}
	if got := clockTicks(filepath.Join(t.TempDir(), "auxv")); got != defaultUserHZ {
		t.Errorf("clockTicks of a missing file = %d, want the default %d", got, defaultUserHZ)
	}
	// Linux's USER_HZ is 100 on every architecture Go supports.
	if runtime.GOOS == "linux" {
		if got := clockTicks("/proc/self/auxv"); got != 100 {
			t.Errorf("clockTicks(/proc/self/auxv) = %d, want 100", got)
		}
	}
}

// fakeStat is one process of a fake /proc for CPU readings.
type fakeStat struct {
	comm                string
	ppid                int
	utime, stime, start uint64
}

// fakeStatProc writes a /proc with one stat file per process; a nil entry
// is a process directory without its stat file (it exited mid-scan).
func fakeStatProc(t *testing.T, procs map[int]*fakeStat) string {
	t.Helper()
	texts := make(map[int]string, len(procs))
	for pid, p := range procs {
		if p != nil {
			texts[pid] = statLine(pid, p.comm, p.ppid, p.utime, p.stime, p.start)
		}
	}
	return fakeProcFiles(t, "stat", texts)
}

func TestReadCPU(t *testing.T) {
	// The gateway (100) with a sandbox init (101) running the demo (102);
	// 103 vanished between the listing and its read; an unrelated process
	// (200) and the direct server (300) with a child of its own (301).
	root := fakeStatProc(t, map[int]*fakeStat{
		1:   {"init", 0, 1, 1, 1},
		100: {"mcpgate", 1, 500, 100, 10},
		101: {"mcpgate init", 100, 2, 1, 11},
		102: {"demo) (x", 101, 40, 10, 12},
		103: nil,
		200: {"other", 1, 9999, 9999, 5},
		300: {"direct", 1, 70, 30, 20},
		301: {"helper", 300, 5, 0, 21},
	})
	got, err := readCPU(root, 100, 300)
	if err != nil {
		t.Fatalf("readCPU: %v", err)
	}
	if len(got) != 2 {
		t.Fatalf("readCPU returned %d readings, want 2", len(got))
	}
	gw, direct := got[0], got[1]
	if want := (procStat{PPid: 1, Ticks: 600, Start: 10}); gw.self != want {
		t.Errorf("gateway = %+v, want %+v", gw.self, want)
	}
	if len(gw.children) != 2 || gw.children[101].Ticks != 3 || gw.children[102].Ticks != 50 {
		t.Errorf("gateway children = %+v, want 101 (3 ticks) and 102 (50 ticks)", gw.children)
	}
	if direct.self.Ticks != 100 || len(direct.children) != 1 || direct.children[301].Ticks != 5 {
		t.Errorf("direct = %+v, want 100 ticks and child 301 with 5", direct)
	}
	for _, pid := range []int{999, 103} {
		if _, err := readCPU(root, pid); err == nil {
			t.Errorf("readCPU of pid %d without a stat file succeeded", pid)
		}
	}
}

func TestCPUDelta(t *testing.T) {
	reading := func(self procStat, children map[int]procStat) cpuReading {
		return cpuReading{self: self, children: children}
	}
	gw := func(ticks uint64) procStat { return procStat{PPid: 1, Ticks: ticks, Start: 10} }
	child := func(ticks, start uint64) procStat { return procStat{PPid: 100, Ticks: ticks, Start: start} }
	for _, tc := range []struct {
		name         string
		start, end   cpuReading
		self, childs uint64
		n            int
	}{
		{"steady", reading(gw(100), map[int]procStat{101: child(5, 11), 102: child(50, 12)}),
			reading(gw(160), map[int]procStat{101: child(6, 11), 102: child(80, 12)}), 60, 31, 2},
		{"no children", reading(gw(100), nil), reading(gw(100), map[int]procStat{}), 0, 0, 0},
		// A child that started in the window is left out: its ticks from
		// before the start reading would otherwise be unknown.
		{"child appeared", reading(gw(100), map[int]procStat{102: child(50, 12)}),
			reading(gw(110), map[int]procStat{102: child(60, 12), 103: child(7, 13)}), 10, 10, 1},
		// A child that exited in the window is left out: its last ticks
		// were never read.
		{"child vanished", reading(gw(100), map[int]procStat{102: child(50, 12), 103: child(7, 13)}),
			reading(gw(110), map[int]procStat{102: child(60, 12)}), 10, 10, 1},
		{"pid reused", reading(gw(100), map[int]procStat{102: child(50, 12)}),
			reading(gw(110), map[int]procStat{102: child(3, 40)}), 10, 0, 0},
		{"counter stepped back", reading(gw(100), map[int]procStat{102: child(50, 12)}),
			reading(gw(90), map[int]procStat{102: child(40, 12)}), 0, 0, 1},
	} {
		self, childs, n, err := cpuDelta(tc.start, tc.end)
		if err != nil || self != tc.self || childs != tc.childs || n != tc.n {
			t.Errorf("%s: cpuDelta = %d, %d, %d, %v; want %d, %d, %d", tc.name, self, childs, n, err, tc.self, tc.childs, tc.n)
		}
	}
	replaced := reading(procStat{PPid: 1, Ticks: 5, Start: 99}, nil)
	if _, _, _, err := cpuDelta(reading(gw(100), nil), replaced); err == nil {
		t.Error("cpuDelta accepted a server whose start time changed")
	}
}

func TestCPUUse(t *testing.T) {
	window := func(server, child, upstream, loadgen uint64) cpuWindow {
		w := cpuWindow{
			procs:   []cpuReading{{self: procStat{Ticks: server, Start: 1}, children: map[int]procStat{2: {Ticks: child, Start: 2}}}},
			loadgen: procStat{Ticks: loadgen},
		}
		if upstream > 0 {
			w.procs = append(w.procs, cpuReading{self: procStat{Ticks: upstream, Start: 3}})
		}
		return w
	}
	// 1,000 calls; at 100 Hz: 250 ticks = 2.5 s = 2,500 µs per call.
	got, err := cpuUse(window(100, 10, 0, 7), window(350, 60, 0, 47), 100, 1000)
	if err != nil {
		t.Fatalf("cpuUse: %v", err)
	}
	want := CPUUse{TicksPerSec: 100, SelfMs: 2500, ChildrenMs: 500, Children: 1, LoadgenMs: 400,
		PerCallSelf: 2500, PerCallChild: 500, PerCallLoadgen: 400}
	if *got != want {
		t.Errorf("cpuUse = %+v, want %+v", *got, want)
	}

	got, err = cpuUse(window(100, 10, 1, 7), window(100, 10, 21, 7), 100, 400)
	if err != nil || got.UpstreamMs != 200 || got.PerCallUp != 500 || got.SelfMs != 0 {
		t.Errorf("cpuUse with an upstream = %+v, %v; want 200 ms, 500 µs per call", got, err)
	}
	got, err = cpuUse(window(100, 10, 0, 7), window(200, 10, 0, 7), 100, 0)
	if err != nil || got.SelfMs != 1000 || got.PerCallSelf != 0 {
		t.Errorf("cpuUse of no calls = %+v, %v; want 1000 ms and 0 per call", got, err)
	}
	if _, err := cpuUse(window(1, 1, 0, 1), window(1, 1, 1, 1), 100, 1); err == nil {
		t.Error("cpuUse accepted readings of different processes")
	}
}

func TestConfigValidateUpstreamPID(t *testing.T) {
	cfg := testConfig("http://127.0.0.1:1", eraModern)
	cfg.UpstreamPID = 7
	if err := cfg.validate(); err == nil {
		t.Error("validate accepted an upstream pid without a pid")
	}
	cfg.PID, cfg.SampleEvery = 5, time.Second
	if err := cfg.validate(); err != nil {
		t.Errorf("validate refused a pid and an upstream pid: %v", err)
	}
	if got := cfg.cpuPIDs(); len(got) != 2 || got[0] != 5 || got[1] != 7 {
		t.Errorf("cpuPIDs = %v, want [5 7]", got)
	}
	cfg.UpstreamPID = -1
	if err := cfg.validate(); err == nil {
		t.Error("validate accepted a negative upstream pid")
	}
}
