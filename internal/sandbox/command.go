// Package sandbox starts the stdio MCP servers mcpgate fronts as child
// processes. It is the one place that builds their command lines and process
// attributes, so that isolation (namespaces, Landlock, seccomp, cgroups) has
// one home.
//
// This build has no isolation yet: a child runs as the gateway's user, with
// the gateway's view of the filesystem and network. Config therefore refuses
// a stdio upstream unless insecure_no_sandbox is set, and the gateway warns
// at every start. What this package already guarantees: the child starts from
// an empty environment plus what config names, inherits no file descriptor
// but its three standard streams, runs in its own process group (so its own
// children can be killed with it), and is killed if the gateway dies.
package sandbox

import (
	"errors"
	"fmt"
	"os/exec"
	"syscall"
)

// Spec describes one child process.
type Spec struct {
	// Argv is the program and its arguments; Argv[0] is looked up in PATH
	// only if it has no slash (the gateway's PATH, not the child's).
	Argv []string
	// Env is the child's whole environment, as KEY=VALUE.
	Env []string
	// Dir is the working directory; empty means the gateway's.
	Dir string
}

// Command builds the *exec.Cmd for spec. The caller starts it (or hands it to
// an MCP command transport) and must call KillGroup after it exits.
func Command(spec Spec) (*exec.Cmd, error) {
	if len(spec.Argv) == 0 || spec.Argv[0] == "" {
		return nil, errors.New("build command: empty argv")
	}
	path, err := exec.LookPath(spec.Argv[0])
	if err != nil {
		return nil, fmt.Errorf("build command: %w", err)
	}
	cmd := exec.Command(path, spec.Argv[1:]...)
	cmd.Args[0] = spec.Argv[0]
	// A non-nil empty slice: a nil Env would hand the child our environment,
	// secrets included.
	cmd.Env = append([]string{}, spec.Env...)
	cmd.Dir = spec.Dir
	// exec.Cmd passes only stdin, stdout and stderr (and ExtraFiles, unused):
	// every other descriptor of ours is close-on-exec in Go.
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
