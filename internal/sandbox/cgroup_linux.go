package sandbox

// Per-sandbox cgroup resource limits (memory, pids, CPU).
//
// Each sandbox gets a group named mcpgate-<name> nested under the gateway's
// own cgroup (read from /proc/self/cgroup), so the gateway never needs write
// access above where it was placed, and whatever limit an operator put on
// the gateway's own group still caps the sandboxes. Both cgroup v1 (one
// hierarchy per controller, as on hybrid hosts) and v2 (one unified tree)
// are supported; on a hybrid host whose v2 mount carries no memory or pids
// controller (only hugetlb, say), v1 is what is used.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// cgroupLimits are one sandbox's resource limits; zero means no limit for
// that resource.
type cgroupLimits struct {
	MemoryBytes int64   // memory (and, where the kernel accounts it, swap) ceiling
	Pids        int64   // most tasks (processes and threads) alive at once
	CPU         float64 // cores, e.g. 0.5; enforced as a CFS quota per 100 ms
}

// cgroupEvents counts what the kernel refused or killed in a group.
type cgroupEvents struct {
	OOMKills    int64 // processes killed by the OOM killer for the memory limit
	PidsRefused int64 // fork/clone calls refused by the pids limit
}

const (
	cgroupPrefix = "mcpgate-"
	// cfsPeriodUS is the CFS bandwidth period; the quota is cores × period.
	cfsPeriodUS = 100000
	// cfsMinQuotaUS is the kernel's smallest accepted quota (1 ms).
	cfsMinQuotaUS = 1000
	// cgroupRemoveTimeout bounds how long remove waits for a group to empty.
	cgroupRemoveTimeout = 2 * time.Second
)

var cgroupNameRE = regexp.MustCompile(`^[a-z0-9-]{1,64}$`)

// cgroupHost is where the cgroup filesystem is and how directories in it are
// made and removed. The package uses hostCgroups; tests point one at a
// temporary directory laid out like a v1 or v2 tree.
type cgroupHost struct {
	root       string // cgroupfs mount point, normally /sys/fs/cgroup
	selfCgroup string // the process's own cgroup list, normally /proc/self/cgroup
	// mkdir and rmdir default to os.Mkdir and syscall.Rmdir. On a real
	// cgroupfs the kernel fills a new directory with its interface files and
	// rmdir removes a group despite them; a fake root must do both itself.
	mkdir func(path string) error
	rmdir func(path string) error
}

var hostCgroups = &cgroupHost{root: "/sys/fs/cgroup", selfCgroup: "/proc/self/cgroup"}

func (h *cgroupHost) doMkdir(path string) error {
	if h.mkdir != nil {
		return h.mkdir(path)
	}
	return os.Mkdir(path, 0o755)
}

func (h *cgroupHost) doRmdir(path string) error {
	if h.rmdir != nil {
		return h.rmdir(path)
	}
	if err := syscall.Rmdir(path); err != nil {
		return &fs.PathError{Op: "rmdir", Path: path, Err: err}
	}
	return nil
}

// cgroup is one sandbox's group: one directory per v1 controller, or a single
// v2 directory.
type cgroup struct {
	host    *cgroupHost
	version int      // 1 or 2
	dirs    []string // every directory created, in creation order
	memDir  string   // holds the memory controller's files
	pidsDir string   // holds the pids controller's files

	mu sync.Mutex // serialises remove
}

// cgroupMode reports which cgroup version newCgroup would use: "v1", "v2",
// or "none" with an error saying why limits cannot be applied.
func cgroupMode() (mode string, err error) { return hostCgroups.mode() }

// newCgroup creates the group(s) named name (a safe token: [a-z0-9-], at most
// 64 characters) under the caller's own cgroup and writes the limits. On any
// failure it removes what it created.
func newCgroup(name string, lim cgroupLimits) (*cgroup, error) {
	return hostCgroups.newCgroup(name, lim)
}

// selfPaths parses the process's cgroup list: v1 controller → path (a line
// naming several controllers, "cpu,cpuacct", gives each of them), the v2
// path (line "0::"), and for each v1 controller the comma-joined list it was
// mounted with.
func (h *cgroupHost) selfPaths() (v1 map[string]string, lists map[string]string, v2 string, err error) {
	data, err := os.ReadFile(h.selfCgroup)
	if err != nil {
		return nil, nil, "", err
	}
	v1 = map[string]string{}
	lists = map[string]string{}
	v2 = ""
	for line := range strings.Lines(string(data)) {
		line = strings.TrimSpace(line)
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[0] == "0" && parts[1] == "" {
			v2 = parts[2]
			continue
		}
		for ctrl := range strings.SplitSeq(parts[1], ",") {
			if ctrl != "" {
				v1[ctrl] = parts[2]
				lists[ctrl] = parts[1]
			}
		}
	}
	return v1, lists, v2, nil
}

// isV2 reports whether the cgroupfs root is a cgroup2 mount: only its root
// has cgroup.controllers (a hybrid host's root is a tmpfs of v1 mounts).
func (h *cgroupHost) isV2() bool {
	_, err := os.Stat(filepath.Join(h.root, "cgroup.controllers"))
	return err == nil
}

// v1Dir is the process's own directory in the v1 hierarchy of ctrl. A
// hierarchy mounting several controllers is a directory named by the list
// ("cpu,cpuacct"), usually with a symlink per controller; either is found.
func (h *cgroupHost) v1Dir(ctrl string) (string, error) {
	paths, lists, _, err := h.selfPaths()
	if err != nil {
		return "", err
	}
	p, ok := paths[ctrl]
	if !ok {
		return "", fmt.Errorf("controller %s not in %s", ctrl, h.selfCgroup)
	}
	for _, mnt := range []string{ctrl, lists[ctrl]} {
		if fi, err := os.Stat(filepath.Join(h.root, mnt)); err != nil || !fi.IsDir() {
			continue
		}
		dir := filepath.Join(h.root, mnt, p)
		if _, err := os.Stat(dir); err != nil {
			// Typically a container without a cgroup namespace, where
			// /proc/self/cgroup names a path the mount does not show.
			return "", fmt.Errorf("own %s cgroup: %w", ctrl, err)
		}
		return dir, nil
	}
	return "", fmt.Errorf("%s hierarchy not mounted under %s", ctrl, h.root)
}

// v2Dir is the process's own directory in the unified hierarchy.
func (h *cgroupHost) v2Dir() (string, error) {
	_, _, p, err := h.selfPaths()
	if err != nil {
		return "", err
	}
	if p == "" {
		return "", fmt.Errorf("no cgroup v2 entry in %s", h.selfCgroup)
	}
	dir := filepath.Join(h.root, p)
	if _, err := os.Stat(dir); err != nil {
		return "", fmt.Errorf("own cgroup: %w", err)
	}
	return dir, nil
}

func (h *cgroupHost) mode() (string, error) {
	if h.isV2() {
		own, err := h.v2Dir()
		if err != nil {
			return "none", fmt.Errorf("cgroup v2: %w", err)
		}
		if _, err := h.v2Missing(own, []string{"memory", "pids"}); err != nil {
			return "none", fmt.Errorf("cgroup v2: %w", err)
		}
		if err := writable(own); err != nil {
			return "none", fmt.Errorf("cgroup v2: %w", err)
		}
		return "v2", nil
	}
	for _, ctrl := range []string{"memory", "pids"} {
		dir, err := h.v1Dir(ctrl)
		if err != nil {
			return "none", fmt.Errorf("cgroup v1: %w", err)
		}
		if err := writable(dir); err != nil {
			return "none", fmt.Errorf("cgroup v1: %w", err)
		}
	}
	return "v1", nil
}

// writable reports whether groups can be made in dir (a read-only cgroupfs,
// as in an unprivileged container, fails with EROFS).
func writable(dir string) error {
	if err := syscall.Access(dir, 2 /* W_OK */); err != nil {
		return &fs.PathError{Op: "access", Path: dir, Err: err}
	}
	return nil
}

// v2Missing returns which of ctrls are not yet enabled in own's
// cgroup.subtree_control, with an error if one of them cannot be: not
// delegated to own (absent from its cgroup.controllers), or own holds
// processes and is not the root (the v2 "no internal processes" rule makes
// the kernel refuse with EBUSY).
func (h *cgroupHost) v2Missing(own string, ctrls []string) ([]string, error) {
	enabled, err := os.ReadFile(filepath.Join(own, "cgroup.subtree_control"))
	if err != nil {
		return nil, err
	}
	available, err := os.ReadFile(filepath.Join(own, "cgroup.controllers"))
	if err != nil {
		return nil, err
	}
	var missing []string
	for _, c := range ctrls {
		if slices.Contains(strings.Fields(string(enabled)), c) {
			continue
		}
		if !slices.Contains(strings.Fields(string(available)), c) {
			return nil, fmt.Errorf("controller %s not delegated to %s (its cgroup.controllers: %q)", c, own, strings.TrimSpace(string(available)))
		}
		missing = append(missing, c)
	}
	if len(missing) > 0 && filepath.Clean(own) != filepath.Clean(h.root) {
		procs, err := readPids(filepath.Join(own, "cgroup.procs"))
		if err != nil {
			return nil, err
		}
		if len(procs) > 0 {
			return nil, errNoInternalProcs(own, missing)
		}
	}
	return missing, nil
}

func errNoInternalProcs(own string, missing []string) error {
	return fmt.Errorf("cannot enable %s in %s: it holds processes (the gateway's own, at least) and cgroup v2 allows controllers only for the children of a group without processes; run the gateway in a delegated cgroup whose processes live in a leaf child, or enable the controllers beforehand",
		strings.Join(missing, ","), own)
}

func (h *cgroupHost) newCgroup(name string, lim cgroupLimits) (*cgroup, error) {
	if !cgroupNameRE.MatchString(name) {
		return nil, fmt.Errorf("create cgroup: invalid name %q (want 1-64 of [a-z0-9-])", name)
	}
	if err := lim.validate(); err != nil {
		return nil, fmt.Errorf("create cgroup: %w", err)
	}
	c := &cgroup{host: h}
	var err error
	if h.isV2() {
		err = c.setupV2(cgroupPrefix+name, lim)
	} else {
		err = c.setupV1(cgroupPrefix+name, lim)
	}
	if err != nil {
		// Best effort: the setup error is the one worth reporting.
		_ = c.remove()
		return nil, err
	}
	return c, nil
}

func (l cgroupLimits) validate() error {
	switch {
	case l.MemoryBytes < 0:
		return fmt.Errorf("negative memory limit %d", l.MemoryBytes)
	case l.Pids < 0:
		return fmt.Errorf("negative pids limit %d", l.Pids)
	case math.IsNaN(l.CPU) || math.IsInf(l.CPU, 0) || l.CPU < 0:
		return fmt.Errorf("invalid cpu limit %v", l.CPU)
	case l.CPU > 0 && l.cpuQuotaUS() < cfsMinQuotaUS:
		return fmt.Errorf("cpu limit %v below the kernel's minimum of %v cores", l.CPU, float64(cfsMinQuotaUS)/cfsPeriodUS)
	case l.CPU > 1e6:
		return fmt.Errorf("cpu limit %v too large", l.CPU)
	}
	return nil
}

func (l cgroupLimits) cpuQuotaUS() int64 { return int64(math.Round(l.CPU * cfsPeriodUS)) }

// mkgroup creates dir and records it for removal. A directory left by a
// crashed previous run under the same name is emptied (its processes
// killed) and removed first, so the new group starts with default settings
// and no strangers inside.
func (c *cgroup) mkgroup(dir string) error {
	err := c.host.doMkdir(dir)
	if errors.Is(err, fs.ErrExist) {
		if err := c.host.removeTree(dir, time.Now().Add(cgroupRemoveTimeout)); err != nil {
			return fmt.Errorf("create cgroup: remove leftover: %w", err)
		}
		err = c.host.doMkdir(dir)
	}
	if err != nil {
		return fmt.Errorf("create cgroup: %w", err)
	}
	c.dirs = append(c.dirs, dir)
	return nil
}

func (c *cgroup) setupV1(base string, lim cgroupLimits) error {
	c.version = 1
	memParent, err := c.host.v1Dir("memory")
	if err != nil {
		return fmt.Errorf("create cgroup: %w", err)
	}
	pidsParent, err := c.host.v1Dir("pids")
	if err != nil {
		return fmt.Errorf("create cgroup: %w", err)
	}
	// Memory and pids groups always exist: they carry the event counters,
	// and the pids group lists every task for remove to kill. A cpu group is
	// made only for a CPU limit.
	c.memDir = filepath.Join(memParent, base)
	c.pidsDir = filepath.Join(pidsParent, base)
	if err := c.mkgroup(c.memDir); err != nil {
		return err
	}
	if err := c.mkgroup(c.pidsDir); err != nil {
		return err
	}
	if lim.MemoryBytes > 0 {
		v := strconv.FormatInt(lim.MemoryBytes, 10)
		// limit_in_bytes first: the kernel keeps it ≤ memsw.limit_in_bytes.
		if err := writeCgroupFile(c.memDir, "memory.limit_in_bytes", v); err != nil {
			return fmt.Errorf("set memory limit: %w", err)
		}
		// memsw is memory+swap; set equal so swap cannot extend the limit.
		// The file exists only where swap accounting is on (swapaccount=1);
		// without it, swap is not charged to the group at all.
		if exists(filepath.Join(c.memDir, "memory.memsw.limit_in_bytes")) {
			if err := writeCgroupFile(c.memDir, "memory.memsw.limit_in_bytes", v); err != nil {
				return fmt.Errorf("set memory+swap limit: %w", err)
			}
		}
		// v1 copies oom_kill_disable from the parent; with it set, a group at
		// its limit would hang instead of having a process killed.
		if oc, err := os.ReadFile(filepath.Join(c.memDir, "memory.oom_control")); err == nil &&
			flatKey(oc, "oom_kill_disable") == 1 {
			if err := writeCgroupFile(c.memDir, "memory.oom_control", "0"); err != nil {
				return fmt.Errorf("set memory limit: enable oom killer: %w", err)
			}
		}
	}
	if lim.Pids > 0 {
		if err := writeCgroupFile(c.pidsDir, "pids.max", strconv.FormatInt(lim.Pids, 10)); err != nil {
			return fmt.Errorf("set pids limit: %w", err)
		}
	}
	if lim.CPU > 0 {
		cpuParent, err := c.host.v1Dir("cpu")
		if err != nil {
			return fmt.Errorf("create cgroup: %w", err)
		}
		cpuDir := filepath.Join(cpuParent, base)
		if err := c.mkgroup(cpuDir); err != nil {
			return err
		}
		if err := writeCgroupFile(cpuDir, "cpu.cfs_period_us", strconv.Itoa(cfsPeriodUS)); err != nil {
			return fmt.Errorf("set cpu limit: %w", err)
		}
		if err := writeCgroupFile(cpuDir, "cpu.cfs_quota_us", strconv.FormatInt(lim.cpuQuotaUS(), 10)); err != nil {
			return fmt.Errorf("set cpu limit: %w", err)
		}
	}
	return nil
}

func (c *cgroup) setupV2(base string, lim cgroupLimits) error {
	c.version = 2
	own, err := c.host.v2Dir()
	if err != nil {
		return fmt.Errorf("create cgroup: %w", err)
	}
	ctrls := []string{"memory", "pids"}
	if lim.CPU > 0 {
		ctrls = append(ctrls, "cpu")
	}
	missing, err := c.host.v2Missing(own, ctrls)
	if err != nil {
		return fmt.Errorf("enable cgroup controllers: %w", err)
	}
	if len(missing) > 0 {
		v := "+" + strings.Join(missing, " +")
		if err := writeCgroupFile(own, "cgroup.subtree_control", v); err != nil {
			if errors.Is(err, syscall.EBUSY) {
				err = fmt.Errorf("%w: %w", errNoInternalProcs(own, missing), err)
			}
			return fmt.Errorf("enable cgroup controllers: %w", err)
		}
	}
	dir := filepath.Join(own, base)
	c.memDir, c.pidsDir = dir, dir
	if err := c.mkgroup(dir); err != nil {
		return err
	}
	if lim.MemoryBytes > 0 {
		if err := writeCgroupFile(dir, "memory.max", strconv.FormatInt(lim.MemoryBytes, 10)); err != nil {
			return fmt.Errorf("set memory limit: %w", err)
		}
		// v2 limits swap separately; 0 keeps swap from extending memory.max.
		// The file is absent when the kernel has no swap accounting.
		if exists(filepath.Join(dir, "memory.swap.max")) {
			if err := writeCgroupFile(dir, "memory.swap.max", "0"); err != nil {
				return fmt.Errorf("set swap limit: %w", err)
			}
		}
	}
	if lim.Pids > 0 {
		if err := writeCgroupFile(dir, "pids.max", strconv.FormatInt(lim.Pids, 10)); err != nil {
			return fmt.Errorf("set pids limit: %w", err)
		}
	}
	if lim.CPU > 0 {
		v := fmt.Sprintf("%d %d", lim.cpuQuotaUS(), cfsPeriodUS)
		if err := writeCgroupFile(dir, "cpu.max", v); err != nil {
			return fmt.Errorf("set cpu limit: %w", err)
		}
	}
	return nil
}

// add moves pid (its whole thread group) into every controller's group.
// Only what pid forks afterwards is born inside; memory it already uses
// stays charged where it was.
func (c *cgroup) add(pid int) error {
	if pid <= 0 {
		return fmt.Errorf("add pid %d to cgroup: invalid pid", pid)
	}
	for _, dir := range c.dirs {
		if err := writeCgroupFile(dir, "cgroup.procs", strconv.Itoa(pid)); err != nil {
			return fmt.Errorf("add pid %d to cgroup: %w", pid, err)
		}
	}
	return nil
}

// events reads the group's OOM-kill and refused-fork counters.
func (c *cgroup) events() (cgroupEvents, error) {
	memFile := "memory.oom_control" // v1: "oom_kill N" line
	if c.version == 2 {
		memFile = "memory.events"
	}
	mem, err := os.ReadFile(filepath.Join(c.memDir, memFile))
	if err != nil {
		return cgroupEvents{}, fmt.Errorf("read cgroup events: %w", err)
	}
	pids, err := os.ReadFile(filepath.Join(c.pidsDir, "pids.events"))
	if err != nil {
		return cgroupEvents{}, fmt.Errorf("read cgroup events: %w", err)
	}
	return cgroupEvents{OOMKills: flatKey(mem, "oom_kill"), PidsRefused: flatKey(pids, "max")}, nil
}

// remove kills whatever is still inside the group and removes its
// directories. It is idempotent: a directory already gone is not an error.
func (c *cgroup) remove() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	deadline := time.Now().Add(cgroupRemoveTimeout)
	var errs []error
	// Reverse creation order; all directories hold the same processes, so
	// the first kill loop empties the rest too.
	for _, dir := range slices.Backward(c.dirs) {
		if err := c.host.removeTree(dir, deadline); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove cgroup: %w", err)
	}
	return nil
}

// removeTree kills every process in dir and any group below it, then
// removes them, bottom up. Sandboxed code cannot normally make child groups,
// but a leftover tree must not block the rmdir.
func (h *cgroupHost) removeTree(dir string, deadline time.Time) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.IsDir() {
			if err := h.removeTree(filepath.Join(dir, e.Name()), deadline); err != nil {
				return err
			}
		}
	}
	if err := killAll(dir, deadline); err != nil {
		return err
	}
	for {
		err := h.doRmdir(dir)
		if err == nil || errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		// EBUSY while the last killed tasks finish exiting.
		if !errors.Is(err, syscall.EBUSY) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// killAll SIGKILLs every process listed in dir/cgroup.procs until the list
// is empty or the deadline passes. A process forking as it is killed can
// add a pid after the read, hence the loop. (v1 offers no atomic kill; a pid
// that exits and is reused between the read and the kill is the residual
// race. On v2, cgroup.kill, where present, kills atomically first.)
func killAll(dir string, deadline time.Time) error {
	if exists(filepath.Join(dir, "cgroup.kill")) {
		_ = writeCgroupFile(dir, "cgroup.kill", "1") // the loop below checks
	}
	for {
		pids, err := readPids(filepath.Join(dir, "cgroup.procs"))
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: %d processes still inside after %v", dir, len(pids), cgroupRemoveTimeout)
		}
		for _, pid := range pids {
			if pid > 0 && pid != os.Getpid() {
				_ = syscall.Kill(pid, syscall.SIGKILL) // ESRCH: already gone
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func readPids(path string) ([]int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, f := range strings.Fields(string(data)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("%s: bad pid %q", path, f)
		}
		pids = append(pids, pid)
	}
	return pids, nil
}

// writeCgroupFile writes value to an existing interface file in one write
// (cgroupfs parses each write on its own); it never creates the file.
func writeCgroupFile(dir, file, value string) error {
	f, err := os.OpenFile(filepath.Join(dir, file), os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	_, werr := f.Write([]byte(value))
	cerr := f.Close()
	if werr != nil {
		return werr
	}
	return cerr
}

// flatKey returns the value of key in a "key value" per line file
// (memory.events, pids.events, memory.oom_control); 0 if absent.
func flatKey(data []byte, key string) int64 {
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if ok && k == key {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// delegatedGroup names the cgroup a root gateway moves itself into before it
// drops to uid: its own, owned by uid, so that the unprivileged gateway can
// still make a group per sandbox beneath it. The dot keeps it apart from
// every sandbox group name (cgroupNameRE allows none).
func delegatedGroup(uid int) string { return "mcpgate.gateway-" + strconv.Itoa(uid) }

// DelegateCgroups prepares the privilege drop to uid:gid (run_as): in each
// v1 hierarchy the sandboxes use (memory, pids, cpu) it makes the gateway's
// delegated group (see delegatedGroup) beneath its own, hands the group's
// directory and its task lists to uid:gid, and moves the whole process in.
// After the drop, sandbox groups are made beneath it as before.
//
// cgroup v2 is refused: its "no internal processes" rule needs the gateway
// in a leaf beside its sandboxes, which a service manager sets up better
// (systemd: User= with Delegate=yes).
func DelegateCgroups(uid, gid int) error {
	return hostCgroups.delegate(uid, gid, os.Getpid())
}

func (h *cgroupHost) delegate(uid, gid, pid int) error {
	if h.isV2() {
		return errors.New("delegate cgroups: cgroup v2 is not delegated by mcpgate; run it as a systemd service with User= and Delegate=yes instead of run_as")
	}
	var dirs []string
	for _, ctrl := range []string{"memory", "pids", "cpu"} {
		own, err := h.v1Dir(ctrl)
		if err != nil {
			return fmt.Errorf("delegate cgroups: %w", err)
		}
		dir := own
		if filepath.Base(own) != delegatedGroup(uid) {
			dir = filepath.Join(own, delegatedGroup(uid))
		}
		if slices.Contains(dirs, dir) {
			continue // controllers mounted together
		}
		if err := h.doMkdir(dir); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("delegate cgroups: %w", err)
		}
		for _, p := range []string{dir, filepath.Join(dir, "tasks"), filepath.Join(dir, "cgroup.procs")} {
			if err := os.Lchown(p, uid, gid); err != nil {
				return fmt.Errorf("delegate cgroups: %w", err)
			}
		}
		dirs = append(dirs, dir)
	}
	for _, dir := range dirs {
		if err := writeCgroupFile(dir, "cgroup.procs", strconv.Itoa(pid)); err != nil {
			return fmt.Errorf("delegate cgroups: move the gateway into %s: %w", dir, err)
		}
	}
	return nil
}
