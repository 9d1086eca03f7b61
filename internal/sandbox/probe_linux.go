package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

func probe() Capabilities {
	c := Capabilities{Root: os.Geteuid() == 0}
	c.Landlock, c.LandlockErr = landlockABI()
	c.Seccomp = probeSeccomp()
	c.Cgroups, c.CgroupsErr = cgroupMode()
	c.UserNamespaces = probeNamespaces(IsolationFull)
	c.RootNamespaces = errors.New("needs a root gateway")
	if c.Root {
		c.RootNamespaces = probeNamespaces(IsolationNoUserNS)
	}
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

// probeNamespaces starts a real init in probe mode at level (full or
// no-userns): the namespaces, the uid mapping and the first mounts of a
// real start.
func probeNamespaces(level Isolation) error {
	ns, err := ownNamespaces()
	if err != nil {
		return err
	}
	s := &sandboxed{spec: Spec{Name: "probe", Limits: Limits{MemoryBytes: -1, Pids: -1}}}
	cmd, err := s.initCommand(initConfig{Probe: true, Level: level, ParentNS: ns}, os.Geteuid() == 0)
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
