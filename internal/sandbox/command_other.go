//go:build !linux

package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
)

// sandboxed is never built off Linux: full isolation needs its kernel.
type sandboxed struct{}

func (*sandboxed) started(context.Context, *exec.Cmd) error { return nil }
func (*sandboxed) finish() Exit                             { return Exit{} }
func (*sandboxed) launch(start func() error) error          { return start() }

func checkSandboxed(spec Spec) error {
	_, err := sandboxCommand(spec)
	return err
}

func sandboxCommand(Spec) (*Child, error) {
	return nil, fmt.Errorf("build command: %w: it needs Linux (user namespaces, Landlock, seccomp)", ErrIsolationUnavailable)
}

func plainCommand(spec Spec) (*exec.Cmd, error) {
	path, err := lookPath(spec.Argv)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(path, spec.Argv[1:]...)
	cmd.Args[0] = spec.Argv[0]
	cmd.Env = append([]string{}, spec.Env...)
	cmd.Dir = spec.Dir
	return cmd, nil
}

// KillGroup kills the child itself; process groups are a Linux guarantee.
func KillGroup(cmd *exec.Cmd) {
	if cmd != nil && cmd.Process != nil {
		_ = cmd.Process.Kill()
	}
}

// KeepDescriptorsPrivate is a no-op off Linux.
func KeepDescriptorsPrivate() error { return nil }

func probe() Capabilities {
	err := errors.New("needs Linux")
	return Capabilities{UserNamespaces: err, RootNamespaces: err, LandlockErr: err, Seccomp: err, Cgroups: "none", CgroupsErr: err}
}

// IsInit is false off Linux: there is no sandbox init.
func IsInit() bool { return false }

// RunInit is never called off Linux (IsInit is false).
func RunInit() {}

// DelegateCgroups is implemented on Linux only.
func DelegateCgroups(uid, gid int) error {
	return errors.New("delegate cgroups: supported on Linux only")
}
