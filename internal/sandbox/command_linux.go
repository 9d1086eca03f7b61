package sandbox

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// plainCommand builds an unisolated child: an empty environment plus
// spec.Env, only the standard streams, its own process group, and a
// parent-death signal.
func plainCommand(spec Spec) (*exec.Cmd, error) {
	path, err := lookPath(spec.Argv)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(path, spec.Argv[1:]...)
	cmd.Args[0] = spec.Argv[0]
	// A non-nil empty slice: a nil Env would hand the child our environment,
	// secrets included.
	cmd.Env = append([]string{}, spec.Env...)
	cmd.Dir = spec.Dir
	// exec.Cmd passes only stdin, stdout and stderr (and ExtraFiles): every
	// other descriptor of ours is close-on-exec (see KeepDescriptorsPrivate
	// for the ones the gateway inherited).
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid: true,
		// WARNING: Pdeathsig fires when the OS thread that started the child
		// exits, not only when the gateway does. Go threads live as long as
		// the process unless a goroutine locks and abandons one, which
		// mcpgate never does; the shutdown path kills the group anyway.
		Pdeathsig: syscall.SIGKILL,
	}
	return cmd, nil
}

// KillGroup kills every process left in the child's process group: servers
// that spawn helpers (npx, shells) must not leave orphans behind. It is a
// no-op when the group is already empty.
func KillGroup(cmd *exec.Cmd) {
	if cmd == nil || cmd.Process == nil {
		return
	}
	// The group id is the child's pid (Setpgid with Pgid 0).
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
}

// KeepDescriptorsPrivate marks every descriptor the process inherited
// above stderr close-on-exec, so that no child, isolated or not, inherits
// one (Go opens its own descriptors close-on-exec, but not the ones it was
// handed). mcpgate's main calls it first thing.
func KeepDescriptorsPrivate() error {
	if err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err == nil {
		return nil
	}
	// Kernels before 5.11: one descriptor at a time.
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return fmt.Errorf("mark descriptors close-on-exec: %w", err)
	}
	for _, e := range entries {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			unix.CloseOnExec(fd)
		}
	}
	return nil
}
