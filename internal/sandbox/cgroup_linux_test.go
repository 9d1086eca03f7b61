package sandbox

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// cgroupChildEnv selects what a re-executed test binary does as a child of
// the real-kernel tests below; each test checks for its own mode first.
const cgroupChildEnv = "MCPGATE_CGROUP_TEST_CHILD"

// requireCgroups skips unless the real kernel's cgroups can be used.
func requireCgroups(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("creating cgroups needs root (euid %d)", os.Geteuid())
	}
	mode, err := cgroupMode()
	if mode == "none" {
		t.Skipf("no usable cgroup hierarchy: %v", err)
	}
	t.Logf("cgroup mode %s", mode)
}

// newTestCgroup creates a real group with a per-process name, removed (and
// checked gone) when the test ends.
func newTestCgroup(t *testing.T, what string, lim cgroupLimits) *cgroup {
	t.Helper()
	name := fmt.Sprintf("test-%s-%d", what, os.Getpid())
	cg, err := newCgroup(name, lim)
	if err != nil {
		t.Fatalf("newCgroup: %v", err)
	}
	t.Cleanup(func() {
		if err := cg.remove(); err != nil {
			t.Errorf("remove: %v", err)
		}
		for _, dir := range cg.dirs {
			if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%s left behind (stat: %v)", dir, err)
			}
		}
	})
	return cg
}

// cgroupChild is a re-executed test binary blocked on stdin until released.
type cgroupChild struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string // stdout, line by line; closed at EOF
}

// startCgroupChild starts the test binary running only test in child mode
// and waits for it to print "ready" (its runtime is up, nothing of its work
// done yet).
func startCgroupChild(t *testing.T, test, mode string) *cgroupChild {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), cgroupChildEnv+"="+mode)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ch := &cgroupChild{cmd: cmd, stdin: stdin, lines: make(chan string, 1024)}
	var waitOnce sync.Once
	t.Cleanup(func() {
		// Normally already dead; this only guards against a failed test
		// leaving it running.
		_ = cmd.Process.Kill()
		waitOnce.Do(func() { _ = cmd.Wait() })
	})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			ch.lines <- sc.Text()
		}
		close(ch.lines)
	}()
	if l := ch.next(t, 30*time.Second); l != "ready" {
		t.Fatalf("child said %q, want ready", l)
	}
	return ch
}

// next returns the child's next stdout line.
func (c *cgroupChild) next(t *testing.T, timeout time.Duration) string {
	t.Helper()
	select {
	case l, ok := <-c.lines:
		if !ok {
			t.Fatal("child closed stdout")
		}
		return l
	case <-time.After(timeout):
		t.Fatal("child silent")
	}
	return ""
}

// release lets the child go on (it is blocked reading one byte).
func (c *cgroupChild) release(t *testing.T) {
	t.Helper()
	if _, err := c.stdin.Write([]byte{1}); err != nil {
		t.Fatal(err)
	}
}

func childAwaitRelease() {
	fmt.Println("ready")
	var b [1]byte
	if _, err := os.Stdin.Read(b[:]); err != nil {
		os.Exit(3)
	}
}

// allocSink holds the memory child's chunks so none is collected.
var allocSink [][]byte

// TestCgroupMemoryLimitKills: a process allocating past a 64 MiB group limit
// is killed by the kernel's OOM killer, and the group counts the kill.
func TestCgroupMemoryLimitKills(t *testing.T) {
	if os.Getenv(cgroupChildEnv) == "alloc" {
		childAwaitRelease()
		for i := 1; ; i++ {
			b := make([]byte, 16<<20)
			for j := 0; j < len(b); j += 4096 {
				b[j] = 1
			}
			allocSink = append(allocSink, b) // keep every chunk alive
			fmt.Printf("allocated %d\n", i*16)
		}
	}
	requireCgroups(t)
	cg := newTestCgroup(t, "mem", cgroupLimits{MemoryBytes: 64 << 20})
	child := startCgroupChild(t, "TestCgroupMemoryLimitKills", "alloc")
	if err := cg.add(child.cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	child.release(t)

	lastMiB := 0
	timeout := time.After(60 * time.Second)
loop:
	for {
		select {
		case l, ok := <-child.lines:
			if !ok {
				break loop
			}
			if n, err := strconv.Atoi(strings.TrimPrefix(l, "allocated ")); err == nil {
				lastMiB = n
			}
		case <-timeout:
			t.Fatalf("child still alive after 60 s, %d MiB allocated", lastMiB)
		}
	}
	err := child.cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("child exit: %v, want killed", err)
	}
	ws := ee.Sys().(syscall.WaitStatus)
	if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child ended with %v, want SIGKILL", ee)
	}
	ev, err := cg.events()
	if err != nil {
		t.Fatal(err)
	}
	peakFile := "memory.max_usage_in_bytes" // v1
	if cg.version == 2 {
		peakFile = "memory.peak"
	}
	peak, _ := os.ReadFile(filepath.Join(cg.memDir, peakFile))
	t.Logf("killed after %d MiB reported allocated; group peak %s bytes; events %+v", lastMiB, strings.TrimSpace(string(peak)), ev)
	if ev.OOMKills < 1 {
		t.Errorf("OOMKills = %d, want >= 1", ev.OOMKills)
	}
	if lastMiB > 64 {
		t.Errorf("child allocated %d MiB under a 64 MiB limit", lastMiB)
	}
}

// TestCgroupPidsLimit: forks past pids.max fail with EAGAIN, the group counts
// them, and remove kills everything that did start.
func TestCgroupPidsLimit(t *testing.T) {
	if os.Getenv(cgroupChildEnv) == "spawn" {
		// Make the runtime create its threads now, before the limit
		// applies: a Go program that cannot make a thread it needs aborts.
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				ts := syscall.NsecToTimespec(int64(50 * time.Millisecond))
				_ = syscall.Nanosleep(&ts, nil)
			})
		}
		wg.Wait()
		childAwaitRelease()
		var started []string
		failed := 0
		for range 40 {
			cmd := exec.Command("/bin/sleep", "30")
			if err := cmd.Start(); err != nil {
				if !errors.Is(err, syscall.EAGAIN) {
					fmt.Printf("error %v\n", err)
				}
				failed++
				continue
			}
			started = append(started, strconv.Itoa(cmd.Process.Pid))
		}
		fmt.Printf("threads %s\n", threadCount("self"))
		fmt.Printf("started %s\n", strings.Join(started, " "))
		fmt.Printf("failed %d\n", failed)
		_, _ = io.Copy(io.Discard, os.Stdin) // wait to be killed
		os.Exit(0)
	}
	requireCgroups(t)
	cg := newTestCgroup(t, "pids", cgroupLimits{Pids: 16})
	child := startCgroupChild(t, "TestCgroupPidsLimit", "spawn")
	if err := cg.add(child.cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	child.release(t)

	var threads string
	var started []int
	failed := -1
	for failed < 0 {
		l := child.next(t, 30*time.Second)
		switch k, v, _ := strings.Cut(l, " "); k {
		case "threads":
			threads = v
		case "started":
			for _, f := range strings.Fields(v) {
				pid, _ := strconv.Atoi(f)
				started = append(started, pid)
			}
		case "failed":
			failed, _ = strconv.Atoi(v)
		default:
			t.Fatalf("child: %s", l)
		}
	}
	ev, err := cg.events()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("child threads %s, sleeps started %d, failed %d; events %+v", threads, len(started), failed, ev)
	if failed == 0 {
		t.Error("no start failed under pids.max 16")
	}
	if ev.PidsRefused == 0 {
		t.Error("PidsRefused = 0")
	}
	if len(started) == 0 {
		t.Error("no sleep started; the kill check below proves nothing")
	}

	if err := cg.remove(); err != nil {
		t.Fatalf("remove: %v", err)
	}
	_ = child.cmd.Wait()
	// The sleeps were the child's children; orphaned by its death they go
	// to init, which reaps them. Until then a dead one is a zombie.
	deadline := time.Now().Add(5 * time.Second)
	for _, pid := range started {
		for {
			state, comm := procState(pid)
			if state == "" || state == "Z" || comm != "sleep" {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("sleep %d still alive (state %s) after remove", pid, state)
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// TestCgroupCPUQuota: a busy loop in a 0.2-core group gets far less than a
// core. The bound is loose (3×) as this is timing.
func TestCgroupCPUQuota(t *testing.T) {
	if os.Getenv(cgroupChildEnv) == "spin" {
		childAwaitRelease()
		var before, after syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &before)
		n := 0
		for end := time.Now().Add(time.Second); time.Now().Before(end); {
			n++
		}
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &after)
		used := time.Duration(after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano())
		fmt.Printf("cpu %d\n", used)
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}
	requireCgroups(t)
	cg := newTestCgroup(t, "cpu", cgroupLimits{CPU: 0.2})
	child := startCgroupChild(t, "TestCgroupCPUQuota", "spin")
	if err := cg.add(child.cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	child.release(t)
	l := child.next(t, 30*time.Second)
	ns, err := strconv.ParseInt(strings.TrimPrefix(l, "cpu "), 10, 64)
	if err != nil {
		t.Fatalf("child: %s", l)
	}
	used := time.Duration(ns)
	t.Logf("1 s of busy loop at 0.2 cores used %v of CPU", used)
	if used >= 600*time.Millisecond {
		t.Errorf("used %v of CPU in 1 s under a 0.2-core quota", used)
	}
}

// TestCgroupLeftoverReplaced: a same-named group left by a crashed run, with
// a process still inside, is emptied and replaced by newCgroup.
func TestCgroupLeftoverReplaced(t *testing.T) {
	requireCgroups(t)
	old := newTestCgroup(t, "leftover", cgroupLimits{Pids: 3})
	sleep := exec.Command("/bin/sleep", "30")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sleep.Process.Kill() })
	if err := old.add(sleep.Process.Pid); err != nil {
		t.Fatal(err)
	}
	cg := newTestCgroup(t, "leftover", cgroupLimits{Pids: 5})
	err := sleep.Wait()
	if ws, ok := sleep.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Errorf("process in leftover group: %v, want killed", err)
	}
	if got := strings.TrimSpace(mustRead(t, filepath.Join(cg.pidsDir, "pids.max"))); got != "5" {
		t.Errorf("pids.max = %s, want 5", got)
	}
	if procs := strings.TrimSpace(mustRead(t, filepath.Join(cg.pidsDir, "cgroup.procs"))); procs != "" {
		t.Errorf("new group holds %q", procs)
	}
}

func threadCount(pid string) string {
	data, _ := os.ReadFile("/proc/" + pid + "/status")
	for l := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(l, "Threads:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

// procState returns pid's state letter and command name, "" if it is gone.
func procState(pid int) (state, comm string) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", ""
	}
	s := string(data)
	open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || closing < open || closing+3 > len(s) {
		return "", ""
	}
	return s[closing+2 : closing+3], s[open+1 : closing]
}

// ---- fake cgroupfs ----

// fakeCgroupFS is a temporary directory laid out like a v1 or v2 cgroupfs.
// Its mkdir fills a new group with the interface files (and their default
// contents) the kernel would; breakFile, if set, is made a directory
// instead, so writing it fails.
type fakeCgroupFS struct {
	v2        bool
	root      string
	files     map[string]map[string]string // top-level dir (v1) or "" (v2) → file → default content
	breakFile string
	host      *cgroupHost
}

const unlimitedV1 = "9223372036854771712\n"

func newFakeV1(t *testing.T, memsw, cpuSymlink bool) *fakeCgroupFS {
	t.Helper()
	f := &fakeCgroupFS{root: t.TempDir()}
	mem := map[string]string{
		"cgroup.procs":          "",
		"tasks":                 "",
		"memory.limit_in_bytes": unlimitedV1,
		"memory.oom_control":    "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
	}
	if memsw {
		mem["memory.memsw.limit_in_bytes"] = unlimitedV1
	}
	cpu := map[string]string{"cgroup.procs": "", "tasks": "", "cpu.cfs_period_us": "100000\n", "cpu.cfs_quota_us": "-1\n"}
	f.files = map[string]map[string]string{
		"memory":      mem,
		"pids":        {"cgroup.procs": "", "tasks": "", "pids.max": "max\n", "pids.events": "max 0\n"},
		"cpu,cpuacct": cpu,
		"cpu":         cpu,
	}
	for _, d := range []string{"memory/svc/x", "pids", "cpu,cpuacct", "unified"} {
		mustMkdirAll(t, filepath.Join(f.root, d))
	}
	if cpuSymlink {
		if err := os.Symlink("cpu,cpuacct", filepath.Join(f.root, "cpu")); err != nil {
			t.Fatal(err)
		}
	}
	// A hybrid host's v2 mount with nothing useful in it.
	mustWrite(t, filepath.Join(f.root, "unified/cgroup.controllers"), "hugetlb\n")
	f.host = f.newHost(t, "9:pids:/\n4:memory:/svc/x\n2:cpu,cpuacct:/\n0::/\n")
	return f
}

func newFakeV2(t *testing.T) *fakeCgroupFS {
	t.Helper()
	f := &fakeCgroupFS{v2: true, root: t.TempDir()}
	f.files = map[string]map[string]string{"": {
		"cgroup.procs":           "",
		"cgroup.controllers":     "",
		"cgroup.subtree_control": "",
		"cgroup.kill":            "",
		"memory.max":             "max\n",
		"memory.swap.max":        "max\n",
		"memory.events":          "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n",
		"pids.max":               "max\n",
		"pids.events":            "max 0\n",
		"cpu.max":                "max 100000\n",
	}}
	mustWrite(t, filepath.Join(f.root, "cgroup.controllers"), "cpuset cpu io memory hugetlb pids rdma misc\n")
	own := filepath.Join(f.root, "svc")
	mustMkdirAll(t, own)
	mustWrite(t, filepath.Join(own, "cgroup.controllers"), "cpu memory pids\n")
	mustWrite(t, filepath.Join(own, "cgroup.subtree_control"), "")
	mustWrite(t, filepath.Join(own, "cgroup.procs"), "")
	f.host = f.newHost(t, "0::/svc\n")
	return f
}

func (f *fakeCgroupFS) newHost(t *testing.T, self string) *cgroupHost {
	selfPath := filepath.Join(t.TempDir(), "cgroup")
	mustWrite(t, selfPath, self)
	return &cgroupHost{
		root:       f.root,
		selfCgroup: selfPath,
		mkdir: func(path string) error {
			if err := os.Mkdir(path, 0o755); err != nil {
				return err
			}
			for name, content := range f.files[f.top(path)] {
				p := filepath.Join(path, name)
				if name == f.breakFile {
					if err := os.Mkdir(p, 0o755); err != nil {
						return err
					}
					continue
				}
				if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
					return err
				}
			}
			return nil
		},
		rmdir: func(path string) error {
			if _, err := os.Stat(path); err != nil {
				return err
			}
			return os.RemoveAll(path)
		},
	}
}

// top is the hierarchy a path is in: its first element under root for v1.
func (f *fakeCgroupFS) top(path string) string {
	if f.v2 {
		return ""
	}
	rel, _ := filepath.Rel(f.root, path)
	top, _, _ := strings.Cut(rel, string(filepath.Separator))
	return top
}

// groups lists every mcpgate-* directory in the fake tree.
func (f *fakeCgroupFS) groups(t *testing.T) []string {
	t.Helper()
	var found []string
	err := filepath.WalkDir(f.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && strings.HasPrefix(d.Name(), cgroupPrefix) {
			rel, _ := filepath.Rel(f.root, p)
			found = append(found, rel)
			return filepath.SkipDir
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

func mustMkdirAll(t *testing.T, p string) {
	t.Helper()
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
}

func mustWrite(t *testing.T, p, s string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustRead(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestCgroupFakeLayouts checks, for v1 and v2 trees, which directories are
// made and exactly which files are written with what, and that zero limits
// write nothing.
func TestCgroupFakeLayouts(t *testing.T) {
	const mib64 = "67108864"
	tests := []struct {
		name    string
		fake    func(t *testing.T) *fakeCgroupFS
		lim     cgroupLimits
		dirs    []string          // groups made, relative to root
		written map[string]string // file (relative to root) → content; all others keep their defaults
	}{{
		name: "v1 all limits",
		fake: func(t *testing.T) *fakeCgroupFS { return newFakeV1(t, true, true) },
		lim:  cgroupLimits{MemoryBytes: 64 << 20, Pids: 16, CPU: 0.5},
		dirs: []string{"memory/svc/x/mcpgate-t", "pids/mcpgate-t", "cpu/mcpgate-t"},
		written: map[string]string{
			"memory/svc/x/mcpgate-t/memory.limit_in_bytes":       mib64,
			"memory/svc/x/mcpgate-t/memory.memsw.limit_in_bytes": mib64,
			"pids/mcpgate-t/pids.max":                            "16",
			"cpu/mcpgate-t/cpu.cfs_period_us":                    "100000",
			"cpu/mcpgate-t/cpu.cfs_quota_us":                     "50000",
		},
	}, {
		name: "v1 without swap accounting, cpu,cpuacct without symlink",
		fake: func(t *testing.T) *fakeCgroupFS { return newFakeV1(t, false, false) },
		lim:  cgroupLimits{MemoryBytes: 1 << 30, CPU: 1.5},
		dirs: []string{"memory/svc/x/mcpgate-t", "pids/mcpgate-t", "cpu,cpuacct/mcpgate-t"},
		written: map[string]string{
			"memory/svc/x/mcpgate-t/memory.limit_in_bytes": "1073741824",
			"cpu,cpuacct/mcpgate-t/cpu.cfs_period_us":      "100000",
			"cpu,cpuacct/mcpgate-t/cpu.cfs_quota_us":       "150000",
		},
	}, {
		name: "v1 zero limits",
		fake: func(t *testing.T) *fakeCgroupFS { return newFakeV1(t, true, true) },
		dirs: []string{"memory/svc/x/mcpgate-t", "pids/mcpgate-t"},
	}, {
		name: "v2 all limits",
		fake: newFakeV2,
		lim:  cgroupLimits{MemoryBytes: 64 << 20, Pids: 16, CPU: 0.25},
		dirs: []string{"svc/mcpgate-t"},
		written: map[string]string{
			"svc/cgroup.subtree_control":    "+memory +pids +cpu",
			"svc/mcpgate-t/memory.max":      mib64,
			"svc/mcpgate-t/memory.swap.max": "0",
			"svc/mcpgate-t/pids.max":        "16",
			"svc/mcpgate-t/cpu.max":         "25000 100000",
		},
	}, {
		name: "v2 zero limits",
		fake: newFakeV2,
		dirs: []string{"svc/mcpgate-t"},
		written: map[string]string{
			"svc/cgroup.subtree_control": "+memory +pids",
		},
	}, {
		name: "v2 controllers already enabled, own group busy",
		fake: func(t *testing.T) *fakeCgroupFS {
			f := newFakeV2(t)
			mustWrite(t, filepath.Join(f.root, "svc/cgroup.subtree_control"), "cpu memory pids\n")
			mustWrite(t, filepath.Join(f.root, "svc/cgroup.procs"), "1234\n")
			return f
		},
		lim:  cgroupLimits{Pids: 100, CPU: 2},
		dirs: []string{"svc/mcpgate-t"},
		written: map[string]string{
			"svc/mcpgate-t/pids.max": "100",
			"svc/mcpgate-t/cpu.max":  "200000 100000",
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := tt.fake(t)
			ownBefore := map[string]string{}
			if f.v2 {
				for _, n := range []string{"cgroup.subtree_control", "cgroup.procs"} {
					ownBefore["svc/"+n] = mustRead(t, filepath.Join(f.root, "svc", n))
				}
			}
			if mode, err := f.host.mode(); mode != map[bool]string{false: "v1", true: "v2"}[f.v2] || err != nil {
				t.Fatalf("mode() = %s, %v", mode, err)
			}
			cg, err := f.host.newCgroup("t", tt.lim)
			if err != nil {
				t.Fatalf("newCgroup: %v", err)
			}
			var got []string
			for _, d := range cg.dirs {
				rel, _ := filepath.Rel(f.root, d)
				got = append(got, rel)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.dirs) {
				t.Errorf("dirs = %v, want %v", got, tt.dirs)
			}
			// Every interface file in the new groups: written value or default.
			for _, d := range cg.dirs {
				for name, def := range f.files[f.top(d)] {
					rel, _ := filepath.Rel(f.root, filepath.Join(d, name))
					want, ok := tt.written[rel]
					if !ok {
						want = def
					}
					if got := mustRead(t, filepath.Join(d, name)); got != want {
						t.Errorf("%s = %q, want %q", rel, got, want)
					}
				}
			}
			for rel, before := range ownBefore {
				want, ok := tt.written[rel]
				if !ok {
					want = before
				}
				if got := mustRead(t, filepath.Join(f.root, rel)); got != want {
					t.Errorf("%s = %q, want %q", rel, got, want)
				}
			}
			for rel, want := range tt.written {
				if got := mustRead(t, filepath.Join(f.root, rel)); got != want {
					t.Errorf("%s = %q, want %q", rel, got, want)
				}
			}

			if err := cg.add(4242); err != nil {
				t.Fatal(err)
			}
			for _, d := range cg.dirs {
				if got := mustRead(t, filepath.Join(d, "cgroup.procs")); got != "4242" {
					t.Errorf("%s/cgroup.procs = %q, want 4242", d, got)
				}
				// The fake kernel never empties it; remove would try to kill.
				mustWrite(t, filepath.Join(d, "cgroup.procs"), "")
			}

			// Counters as the kernel formats them.
			if f.v2 {
				mustWrite(t, filepath.Join(cg.memDir, "memory.events"), "low 0\nhigh 0\nmax 9\noom 2\noom_kill 2\noom_group_kill 0\n")
			} else {
				mustWrite(t, filepath.Join(cg.memDir, "memory.oom_control"), "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
			}
			mustWrite(t, filepath.Join(cg.pidsDir, "pids.events"), "max 7\n")
			if ev, err := cg.events(); err != nil || ev != (cgroupEvents{OOMKills: 2, PidsRefused: 7}) {
				t.Errorf("events() = %+v, %v; want {2 7}", ev, err)
			}

			for i := range 2 {
				if err := cg.remove(); err != nil {
					t.Fatalf("remove #%d: %v", i+1, err)
				}
			}
			if g := f.groups(t); len(g) != 0 {
				t.Errorf("left behind: %v", g)
			}
			if _, err := cg.events(); err == nil {
				t.Error("events() after remove: no error")
			}
		})
	}
}

func TestCgroupFakeRejects(t *testing.T) {
	f := newFakeV1(t, true, true)
	for _, name := range []string{"", "A", "a_b", "a.b", "../x", "a/b", "a b", "é", "x\n", strings.Repeat("a", 65)} {
		if _, err := f.host.newCgroup(name, cgroupLimits{}); err == nil || !strings.Contains(err.Error(), "invalid name") {
			t.Errorf("newCgroup(%q): %v, want invalid name", name, err)
		}
	}
	for _, lim := range []cgroupLimits{{MemoryBytes: -1}, {Pids: -1}, {CPU: -0.5}, {CPU: 0.001}, {CPU: 1e9}} {
		if _, err := f.host.newCgroup("t", lim); err == nil {
			t.Errorf("newCgroup(%+v): no error", lim)
		}
	}
	if g := f.groups(t); len(g) != 0 {
		t.Errorf("created: %v", g)
	}
	for _, name := range []string{"a", "0-9", strings.Repeat("z", 64)} {
		cg, err := f.host.newCgroup(name, cgroupLimits{})
		if err != nil {
			t.Errorf("newCgroup(%q): %v", name, err)
			continue
		}
		if err := cg.remove(); err != nil {
			t.Error(err)
		}
	}
}

// TestCgroupFakeFailureCleansUp: a limit that cannot be written fails
// newCgroup with the step named, and leaves no group behind.
func TestCgroupFakeFailureCleansUp(t *testing.T) {
	tests := []struct {
		fake      func(t *testing.T) *fakeCgroupFS
		breakFile string
		lim       cgroupLimits
		want      string // in the error; "" means no error (file not written)
	}{
		{func(t *testing.T) *fakeCgroupFS { return newFakeV1(t, true, true) }, "memory.limit_in_bytes", cgroupLimits{MemoryBytes: 1 << 20}, "set memory limit"},
		{func(t *testing.T) *fakeCgroupFS { return newFakeV1(t, true, true) }, "memory.memsw.limit_in_bytes", cgroupLimits{MemoryBytes: 1 << 20}, "set memory+swap limit"},
		{func(t *testing.T) *fakeCgroupFS { return newFakeV1(t, true, true) }, "pids.max", cgroupLimits{MemoryBytes: 1 << 20, Pids: 5}, "set pids limit"},
		{func(t *testing.T) *fakeCgroupFS { return newFakeV1(t, true, true) }, "cpu.cfs_quota_us", cgroupLimits{MemoryBytes: 1 << 20, Pids: 5, CPU: 1}, "set cpu limit"},
		{func(t *testing.T) *fakeCgroupFS { return newFakeV1(t, true, true) }, "pids.max", cgroupLimits{MemoryBytes: 1 << 20}, ""},
		{newFakeV2, "memory.max", cgroupLimits{MemoryBytes: 1 << 20}, "set memory limit"},
		{newFakeV2, "memory.swap.max", cgroupLimits{MemoryBytes: 1 << 20}, "set swap limit"},
		{newFakeV2, "pids.max", cgroupLimits{Pids: 5}, "set pids limit"},
		{newFakeV2, "cpu.max", cgroupLimits{Pids: 5, CPU: 1}, "set cpu limit"},
		{newFakeV2, "cpu.max", cgroupLimits{Pids: 5}, ""},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s %+v", tt.breakFile, tt.lim), func(t *testing.T) {
			f := tt.fake(t)
			f.breakFile = tt.breakFile
			cg, err := f.host.newCgroup("t", tt.lim)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("newCgroup: %v", err)
				}
				if err := cg.remove(); err != nil {
					t.Fatal(err)
				}
			} else if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("newCgroup: %v, want %q", err, tt.want)
			}
			if g := f.groups(t); len(g) != 0 {
				t.Errorf("left behind: %v", g)
			}
		})
	}
}

// TestCgroupFakeLeftover: a group left by a crashed run is replaced, not
// reused with whatever settings it had.
func TestCgroupFakeLeftover(t *testing.T) {
	f := newFakeV1(t, true, true)
	old := filepath.Join(f.root, "pids/mcpgate-t")
	if err := f.host.mkdir(old); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, filepath.Join(old, "pids.max"), "3")
	mustWrite(t, filepath.Join(old, "stale"), "")
	cg, err := f.host.newCgroup("t", cgroupLimits{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cg.remove() }()
	if _, err := os.Stat(filepath.Join(old, "stale")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("leftover group reused (stat stale: %v)", err)
	}
	if got := mustRead(t, filepath.Join(old, "pids.max")); got != "max\n" {
		t.Errorf("pids.max = %q, want the default", got)
	}
}

func TestCgroupFakeV2Refusals(t *testing.T) {
	t.Run("own group holds processes", func(t *testing.T) {
		f := newFakeV2(t)
		mustWrite(t, filepath.Join(f.root, "svc/cgroup.procs"), "1234\n")
		if mode, err := f.host.mode(); mode != "none" || err == nil || !strings.Contains(err.Error(), "holds processes") {
			t.Errorf("mode() = %s, %v", mode, err)
		}
		if _, err := f.host.newCgroup("t", cgroupLimits{}); err == nil || !strings.Contains(err.Error(), "enable cgroup controllers") || !strings.Contains(err.Error(), "holds processes") {
			t.Errorf("newCgroup: %v", err)
		}
		if got := mustRead(t, filepath.Join(f.root, "svc/cgroup.subtree_control")); got != "" {
			t.Errorf("subtree_control written: %q", got)
		}
		if g := f.groups(t); len(g) != 0 {
			t.Errorf("created: %v", g)
		}
	})
	t.Run("controller not delegated", func(t *testing.T) {
		f := newFakeV2(t)
		mustWrite(t, filepath.Join(f.root, "svc/cgroup.controllers"), "memory pids\n")
		if mode, _ := f.host.mode(); mode != "v2" {
			t.Errorf("mode() = %s without cpu", mode)
		}
		if _, err := f.host.newCgroup("t", cgroupLimits{CPU: 1}); err == nil || !strings.Contains(err.Error(), "controller cpu not delegated") {
			t.Errorf("newCgroup: %v", err)
		}
		mustWrite(t, filepath.Join(f.root, "svc/cgroup.controllers"), "cpu\n")
		if mode, err := f.host.mode(); mode != "none" || err == nil {
			t.Errorf("mode() = %s, %v without memory", mode, err)
		}
	})
}

func TestCgroupFakeModeNone(t *testing.T) {
	f := newFakeV1(t, true, true)
	if err := os.RemoveAll(filepath.Join(f.root, "pids")); err != nil {
		t.Fatal(err)
	}
	if mode, err := f.host.mode(); mode != "none" || err == nil {
		t.Errorf("mode() without pids = %s, %v", mode, err)
	}
	empty := &cgroupHost{root: t.TempDir(), selfCgroup: f.host.selfCgroup}
	if mode, err := empty.mode(); mode != "none" || err == nil {
		t.Errorf("mode() on empty root = %s, %v", mode, err)
	}
}

// TestCgroupFakeDelegate: before a drop to run_as, each hierarchy gets the
// gateway's own group, owned by the target user, holding the gateway; the
// sandbox groups made afterwards go beneath it. Running it again reuses the
// group. cgroup v2 is refused with the way out.
func TestCgroupFakeDelegate(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("handing a directory to another user needs root (CI runs as root)")
	}
	f := newFakeV1(t, false, true)
	for range 2 {
		if err := f.host.delegate(65534, 65534, 4242); err != nil {
			t.Fatal(err)
		}
	}
	for _, dir := range []string{"memory/svc/x", "pids", "cpu,cpuacct"} {
		d := filepath.Join(f.root, dir, "mcpgate.gateway-65534")
		for _, p := range []string{d, filepath.Join(d, "tasks"), filepath.Join(d, "cgroup.procs")} {
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if st := fi.Sys().(*syscall.Stat_t); st.Uid != 65534 || st.Gid != 65534 {
				t.Errorf("%s owned by %d:%d, want 65534:65534", p, st.Uid, st.Gid)
			}
		}
		if b, _ := os.ReadFile(filepath.Join(d, "cgroup.procs")); string(b) != "4242" {
			t.Errorf("%s/cgroup.procs = %q, want the gateway's pid", d, b)
		}
	}
	// The kernel now lists the gateway in its delegated groups.
	mustWrite(t, f.host.selfCgroup, "9:pids:/mcpgate.gateway-65534\n4:memory:/svc/x/mcpgate.gateway-65534\n2:cpu,cpuacct:/mcpgate.gateway-65534\n0::/\n")
	if err := f.host.delegate(65534, 65534, 4242); err != nil {
		t.Fatalf("delegate from inside the delegated group: %v", err)
	}
	if _, err := os.Stat(filepath.Join(f.root, "pids/mcpgate.gateway-65534/mcpgate.gateway-65534")); err == nil {
		t.Error("a second delegation from inside nested another group")
	}
	c, err := f.host.newCgroup("tool", cgroupLimits{MemoryBytes: 64 << 20, Pids: 16})
	if err != nil {
		t.Fatal(err)
	}
	defer c.remove()
	if want := filepath.Join(f.root, "pids/mcpgate.gateway-65534/mcpgate-tool"); c.pidsDir != want {
		t.Errorf("sandbox group at %s, want %s", c.pidsDir, want)
	}

	if err := newFakeV2(t).host.delegate(65534, 65534, 4242); err == nil || !strings.Contains(err.Error(), "Delegate=yes") {
		t.Errorf("v2 delegate = %v, want a refusal naming systemd's Delegate=yes", err)
	}
}
