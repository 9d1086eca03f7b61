package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Capabilities is what the host offers for isolation, found by trying each
// feature rather than trusting sysctls (which differ by distribution).
type Capabilities struct {
	// UserNamespaces is nil when a child could be started in new user,
	// pid, mount, network, ipc, uts and cgroup namespaces and mount a
	// tmpfs and a /proc there.
	UserNamespaces error
	// Landlock is the kernel's Landlock ABI, 0 with LandlockErr set when
	// unavailable.
	Landlock    int
	LandlockErr error
	// Seccomp is nil when seccomp filters can be installed.
	Seccomp error
	// Cgroups is "v1", "v2" or "none" (CgroupsErr then says why).
	Cgroups    string
	CgroupsErr error
	// Root reports whether the gateway runs as root, which maps sandboxes
	// to dedicated host uid ranges (otherwise only the gateway's uid).
	Root bool
}

// The probe's result is cached for the process: the kernel's features do
// not change while it runs, and the probe starts a process.
var (
	probeOnce sync.Once
	probed    Capabilities
)

// Probe reports what the host offers; the first call does the work.
func Probe() Capabilities {
	probeOnce.Do(func() { probed = probe() })
	return probed
}

// FullIsolation reports why full isolation is impossible here, or nil.
func (c Capabilities) FullIsolation() error {
	var errs []error
	if c.UserNamespaces != nil {
		errs = append(errs, fmt.Errorf("user namespaces: %w", c.UserNamespaces))
	}
	if c.LandlockErr != nil {
		errs = append(errs, c.LandlockErr)
	}
	if c.Seccomp != nil {
		errs = append(errs, fmt.Errorf("seccomp: %w", c.Seccomp))
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrIsolationUnavailable, errors.Join(errs...))
}

func probe() Capabilities {
	c := Capabilities{Root: os.Geteuid() == 0}
	c.Landlock, c.LandlockErr = landlockABI()
	c.Seccomp = probeSeccomp()
	c.Cgroups, c.CgroupsErr = cgroupMode()
	c.UserNamespaces = probeNamespaces()
	return c
}

func probeSeccomp() error {
	if _, err := unix.PrctlRetInt(unix.PR_GET_SECCOMP, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("not built into this kernel: %w", err)
	}
	action := uint32(unix.SECCOMP_RET_KILL_PROCESS)
	if _, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_GET_ACTION_AVAIL, 0, uintptr(unsafe.Pointer(&action))); errno != 0 {
		return fmt.Errorf("kill-process action unavailable: %w", errno)
	}
	return nil
}

// probeNamespaces starts a real init in probe mode: the namespaces, the
// uid mapping and the first mounts of a real start.
func probeNamespaces() error {
	ns, err := ownNamespaces()
	if err != nil {
		return err
	}
	s := &sandboxed{spec: Spec{Name: "probe", Limits: Limits{MemoryBytes: -1, Pids: -1}}}
	cmd, err := s.initCommand(initConfig{Probe: true, ParentNS: ns}, os.Geteuid() == 0)
	if err != nil {
		return err
	}
	var stderr headBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		s.finish()
		return fmt.Errorf("start: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = s.started(ctx, cmd)
	if err != nil {
		_ = cmd.Process.Kill()
	}
	_ = cmd.Wait()
	s.finish()
	if err != nil && len(stderr.b) > 0 {
		err = fmt.Errorf("%w: %s", err, strings.TrimSpace(string(stderr.b)))
	}
	return err
}

// headBuffer keeps the first 1 KiB written to it.
type headBuffer struct{ b []byte }

func (h *headBuffer) Write(p []byte) (int, error) {
	if room := 1024 - len(h.b); room > 0 {
		h.b = append(h.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}
