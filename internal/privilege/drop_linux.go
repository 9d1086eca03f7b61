package privilege

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Drop switches every thread of the process to t for good, then verifies
// that no thread kept a root id or a capability.
//
// WARNING: this is irreversible by design, and it is only sound while the
// process is still single-purpose: call it after the ports are bound and
// before anything else (upstreams, audit log, files) is opened, so that
// everything the gateway creates belongs to t. Go's syscall package applies
// each call to all threads (glibc's setxid broadcast under cgo, the runtime's
// AllThreadsSyscall otherwise), and the order matters: groups and gid first,
// while the process still may change them, uid last.
func Drop(t Target) error {
	if t.UID == 0 || t.GID == 0 {
		return errors.New("drop privileges: target is root")
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("drop privileges to %s: %w (running as uid %d)", t.Name, ErrNotRoot, os.Geteuid())
	}
	if err := syscall.Setgroups(t.Groups); err != nil {
		return fmt.Errorf("drop privileges: setgroups: %w", err)
	}
	if err := syscall.Setresgid(t.GID, t.GID, t.GID); err != nil {
		return fmt.Errorf("drop privileges: setresgid: %w", err)
	}
	if err := syscall.Setresuid(t.UID, t.UID, t.UID); err != nil {
		return fmt.Errorf("drop privileges: setresuid: %w", err)
	}
	// The uid change made the process non-dumpable, which hands its /proc
	// files to root: the gateway could then no longer write the uid_map of
	// the sandboxes it starts in user namespaces. It becomes dumpable again,
	// as an unprivileged gateway started by its own user is, and core dumps
	// (which would hold keys and secrets) are turned off instead.
	if err := unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{}); err != nil {
		return fmt.Errorf("drop privileges: disable core dumps: %w", err)
	}
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("drop privileges: set dumpable: %w", err)
	}
	if err := Verify(t); err != nil {
		return fmt.Errorf("drop privileges: %w", err)
	}
	return nil
}

// Verify checks, per thread as the kernel reports it, that the process runs
// as t with no capability, and that it cannot become root again.
func Verify(t Target) error {
	tasks, err := filepath.Glob("/proc/self/task/*/status")
	if err != nil || len(tasks) == 0 {
		return fmt.Errorf("verify credentials: list threads: %v", err)
	}
	for _, path := range tasks {
		b, err := os.ReadFile(path)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue // the thread exited
			}
			return fmt.Errorf("verify credentials: %w", err)
		}
		if err := checkStatus(string(b), t); err != nil {
			return fmt.Errorf("verify credentials of thread %s: %w", filepath.Base(filepath.Dir(path)), err)
		}
	}
	// The kernel is the last word: a process that could take uid 0 back
	// would have kept the saved set-user-ID or a capability.
	if err := syscall.Setresuid(-1, 0, -1); err == nil {
		return errors.New("verify credentials: the process could become root again")
	}
	return nil
}

// checkStatus checks one /proc/<pid>/task/<tid>/status text.
func checkStatus(status string, t Target) error {
	want := map[string]bool{"Uid": true, "Gid": true, "Groups": true, "CapPrm": true, "CapEff": true, "CapAmb": true}
	seen := map[string]bool{}
	for line := range strings.Lines(status) {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || (!want[k] && !seen[k]) {
			continue
		}
		if seen[k] {
			return fmt.Errorf("status repeats %s", k)
		}
		delete(want, k)
		seen[k] = true
		fields := strings.Fields(v)
		switch k {
		case "Uid", "Gid":
			id := strconv.Itoa(t.UID)
			if k == "Gid" {
				id = strconv.Itoa(t.GID)
			}
			if len(fields) != 4 || slices.ContainsFunc(fields, func(f string) bool { return f != id }) {
				return fmt.Errorf("%s is %q, want %s for real, effective, saved and filesystem", k, strings.TrimSpace(v), id)
			}
		case "Groups":
			for _, f := range fields {
				g, err := strconv.Atoi(f)
				if err != nil || !slices.Contains(t.Groups, g) {
					return fmt.Errorf("supplementary group %s is not one of %v", f, t.Groups)
				}
			}
		default:
			if n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64); err != nil || n != 0 {
				return fmt.Errorf("%s is %s, want none", k, strings.TrimSpace(v))
			}
		}
	}
	if len(want) != 0 {
		return fmt.Errorf("status lacks %v", slices.Sorted(maps.Keys(want)))
	}
	return nil
}
