package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"
)

// statusText is a trimmed /proc/PID/status of a real process.
const statusText = `Name:	mcpgate
Umask:	0022
State:	S (sleeping)
Tgid:	4242
Pid:	4242
PPid:	17
VmPeak:	 1300000 kB
VmRSS:	   23456 kB
RssAnon:	   12000 kB
Threads:	9
`

func TestParseStatus(t *testing.T) {
	st, err := parseStatus(statusText)
	if err != nil {
		t.Fatalf("parseStatus: %v", err)
	}
	if st.RSSKB != 23456 || st.PPid != 17 {
		t.Errorf("got %+v, want RSS 23456 kB and PPid 17", st)
	}

	// A kernel thread or a zombie has no VmRSS: a reading of 0, not an error.
	st, err = parseStatus("Name:\tkthreadd\nPPid:\t0\n")
	if err != nil || st.RSSKB != 0 || st.PPid != 0 {
		t.Errorf("kernel thread: got %+v, %v; want zero RSS and no error", st, err)
	}

	for name, text := range map[string]string{
		"no PPid":       "Name:\tx\nVmRSS:\t10 kB\n",
		"bad unit":      "PPid:\t1\nVmRSS:\t10 MB\n",
		"bad number":    "PPid:\t1\nVmRSS:\tten kB\n",
		"bad PPid":      "PPid:\tone\nVmRSS:\t10 kB\n",
		"two PPid nums": "PPid:\t1 2\nVmRSS:\t10 kB\n",
	} {
		if _, err := parseStatus(text); err == nil {
			t.Errorf("%s: parseStatus accepted %q", name, text)
		}
	}
}

func TestDescendants(t *testing.T) {
	// 1 ─┬─ 10 ─┬─ 11 ── 13
	//    │      └─ 12
	//    └─ 20 ── 21
	parents := map[int]int{10: 1, 11: 10, 12: 10, 13: 11, 20: 1, 21: 20}
	got := descendants(parents, 10)
	slices.Sort(got)
	if want := []int{11, 12, 13}; !slices.Equal(got, want) {
		t.Errorf("descendants of 10 = %v, want %v", got, want)
	}
	if got := descendants(parents, 13); len(got) != 0 {
		t.Errorf("descendants of a leaf = %v, want none", got)
	}
	// A cycle (impossible in /proc, possible in a bad map) must end.
	if got := descendants(map[int]int{2: 3, 3: 2}, 2); !slices.Equal(got, []int{3}) {
		t.Errorf("descendants in a cycle = %v, want [3]", got)
	}
}

// fakeProc writes a /proc with one status file per process: pid -> (ppid, rss kB).
func fakeProc(t *testing.T, procs map[int][2]int) string {
	t.Helper()
	texts := make(map[int]string, len(procs))
	for pid, p := range procs {
		texts[pid] = fmt.Sprintf("Name:\tp%d\nPPid:\t%d\nVmRSS:\t%d kB\n", pid, p[0], p[1])
	}
	return fakeProcFiles(t, "status", texts)
}

// fakeProcFiles writes a /proc with a directory per process holding file
// with its text; an empty text leaves the directory empty (a process that
// exited between the listing and the read).
func fakeProcFiles(t *testing.T, file string, texts map[int]string) string {
	t.Helper()
	root := t.TempDir()
	for pid, text := range texts {
		dir := filepath.Join(root, strconv.Itoa(pid))
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if text == "" {
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, file), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Entries that are not processes are skipped.
	if err := os.Mkdir(filepath.Join(root, "self"), 0o755); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestReadRSS(t *testing.T) {
	// The gateway (100) with a sandbox init (101) running the demo (102),
	// next to an unrelated process (200).
	root := fakeProc(t, map[int][2]int{
		1:   {0, 5000},
		100: {1, 30000},
		101: {100, 1000},
		102: {101, 9000},
		200: {1, 70000},
	})
	got, err := readRSS(root, 100)
	if err != nil {
		t.Fatalf("readRSS: %v", err)
	}
	if want := (rss{SelfKB: 30000, ChildrenKB: 10000, Children: 2}); got != want {
		t.Errorf("readRSS = %+v, want %+v", got, want)
	}
	if _, err := readRSS(root, 999); err == nil {
		t.Error("readRSS of a missing pid succeeded")
	}

	settled, err := settledRSS(t.Context(), root, 100, 0, 3, time.Millisecond)
	if err != nil || settled != got {
		t.Errorf("settledRSS = %+v, %v; want %+v", settled, err, got)
	}
}

func TestReadRSSSelf(t *testing.T) {
	r, err := readRSS("/proc", os.Getpid())
	if err != nil {
		t.Skipf("no readable /proc here: %v", err)
	}
	if r.SelfKB <= 0 {
		t.Errorf("own VmRSS = %d kB, want > 0", r.SelfKB)
	}
}

func TestPeakOf(t *testing.T) {
	a := rss{SelfKB: 100, ChildrenKB: 50, Children: 1}
	b := rss{SelfKB: 80, ChildrenKB: 70, Children: 2}
	if got, want := peakOf(a, b), (rss{SelfKB: 100, ChildrenKB: 70, Children: 2}); got != want {
		t.Errorf("peakOf = %+v, want %+v", got, want)
	}
}

func TestPerSessionKB(t *testing.T) {
	for _, tc := range []struct {
		before, after int64
		n             int
		want          float64
	}{
		{40000, 60000, 1000, 20},
		{40000, 40512, 1000, 0.512},
		{40000, 39000, 1000, -1}, // memory returned to the OS shows, unclamped
		{40000, 60000, 0, 0},
	} {
		if got := perSessionKB(tc.before, tc.after, tc.n); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("perSessionKB(%d, %d, %d) = %v, want %v", tc.before, tc.after, tc.n, got, tc.want)
		}
	}
}
