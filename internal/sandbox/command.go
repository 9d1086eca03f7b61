// Package sandbox starts the stdio MCP servers mcpgate fronts as isolated
// child processes. It is the one place that builds their command lines and
// process attributes.
//
// Full isolation (the default, Linux only) re-executes mcpgate as a small
// init process inside new user, pid, mount, network, ipc, uts and cgroup
// namespaces. The init builds a read-only minimal root (/usr, a few /etc
// files, the tool's executable and the configured grants, a private /tmp, a
// minimal /dev and a fresh /proc), pivots into it, and then, on one locked
// OS thread, drops every capability, moves to an unprivileged uid, sets
// no_new_privs, applies Landlock and a seccomp filter, and forks the tool.
// It stays as pid 1 of the sandbox, reaping and forwarding signals; when it
// exits, the kernel kills everything left in the sandbox. Memory, pids and
// CPU are limited by a cgroup per child; the network is loopback only,
// unless an allowlist gives egress through a proxy the gateway runs on a
// listener created inside the sandbox's network namespace.
//
// A Probe at start tells which of these the host offers. Full isolation is
// all or nothing: a missing feature refuses the child with an error naming
// the feature. IsolationNone (config: insecure_no_sandbox) runs a plain
// child and exists for hosts without the kernel features.
//
// Whatever the isolation, a child starts from an empty environment plus what
// config names, inherits no file descriptor but its three standard streams,
// and dies with the gateway.
package sandbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
)

// Isolation is how strongly a child is isolated from the host.
type Isolation string

const (
	// IsolationFull is every namespace, a read-only minimal root, no
	// capabilities, an unprivileged uid, no_new_privs, Landlock, seccomp and
	// cgroup limits. It is the default (the zero Isolation).
	IsolationFull Isolation = "full"
	// IsolationNoUserNS is full isolation without a user namespace, for
	// root gateways on hosts that refuse user namespaces: the namespaces,
	// the root and every restriction are the same, but the sandbox's root
	// is the host's root until the tool drops to its host uid, and the
	// tool's uid is a host uid (UIDBase+ChildUID), not a mapped one.
	IsolationNoUserNS Isolation = "no-userns"
	// IsolationLandlockOnly uses no namespace: the tool sees the host's
	// processes and network stack, Landlock confines its files to the
	// grants (and /usr, a few /etc files, /proc and the harmless devices)
	// and its TCP to the egress proxy, seccomp and the cgroup apply, and a
	// root gateway drops it to its own host uid. UDP is not confined.
	IsolationLandlockOnly Isolation = "landlock-only"
	// IsolationNone is a plain child process running as the gateway's user
	// with the gateway's view of files and network.
	IsolationNone Isolation = "none"
)

// strength orders the levels, strongest first.
var strength = map[Isolation]int{IsolationFull: 0, "": 0, IsolationNoUserNS: 1, IsolationLandlockOnly: 2, IsolationNone: 3}

// Choose returns the strongest isolation this host offers that is at
// least weakest (the zero Isolation means full): full when it can, else
// the next level down, never below weakest. The error names what is
// missing for each level tried.
func Choose(weakest Isolation) (Isolation, error) {
	return Probe().Choose(weakest)
}

// Choose is the package's Choose against c.
func (c Capabilities) Choose(weakest Isolation) (Isolation, error) {
	limit, ok := strength[weakest]
	if !ok {
		return "", fmt.Errorf("choose isolation: unknown level %q", weakest)
	}
	var errs []error
	for _, level := range []Isolation{IsolationFull, IsolationNoUserNS, IsolationLandlockOnly, IsolationNone} {
		if strength[level] > limit {
			break
		}
		err := c.Offers(level)
		if err == nil {
			return level, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", level, err))
	}
	return "", fmt.Errorf("%w: %w", ErrIsolationUnavailable, errors.Join(errs...))
}

// Limits are one child's resource limits; zero means the default applies
// (see DefaultLimits), a negative value means no limit.
type Limits struct {
	MemoryBytes int64   // cgroup memory limit, swap included
	Pids        int64   // cgroup pids limit (threads count)
	CPU         float64 // cgroup CPU quota in cores; 0 means none
	NoFile      uint64  // RLIMIT_NOFILE
}

// DefaultLimits apply where a Spec leaves a limit zero: enough for a node
// MCP server with its helpers, small enough that one runaway child cannot
// take the host down.
var DefaultLimits = Limits{MemoryBytes: 1 << 30, Pids: 256, NoFile: 1024}

// Spec describes one child process.
type Spec struct {
	// Name names the child in logs and its cgroup: [a-z0-9-], at most 40
	// bytes.
	Name string
	// Argv is the program and its arguments; Argv[0] is looked up in PATH
	// only if it has no slash (the gateway's PATH, not the child's).
	Argv []string
	// Env is the child's whole environment, as KEY=VALUE.
	Env []string
	// Dir is the working directory. Fully isolated, it is bound read-only
	// into the sandbox unless a grant covers it; empty means "/". Without
	// isolation, empty means the gateway's.
	Dir string
	// Isolation is the level to use (see Choose); it defaults to
	// IsolationFull.
	Isolation Isolation
	// Read and Write are host paths the child may read (and execute), or
	// read and write. They appear at the same paths inside the sandbox.
	Read, Write []string
	// State is a directory the gateway created for this child: bound
	// read-write and, when the gateway runs as root, handed to the child's
	// uid.
	State string
	// Allow is the egress allowlist ("host:port"); empty means no network
	// beyond the sandbox's own loopback.
	Allow []string
	// Limits are the resource limits.
	Limits Limits
	// UIDBase is the first host uid of the sandbox's 65536-uid range when
	// the gateway runs as root (the tool runs as UIDBase+ChildUID); zero
	// picks DefaultUIDBase. Unprivileged gateways can map only themselves.
	UIDBase uint32
	// Logger receives the child's sandbox events (egress decisions, limit
	// kills). Nil discards them.
	Logger *slog.Logger
}

// ChildUID is the uid (and gid) the tool runs as inside a sandbox started by
// root; it maps to UIDBase+ChildUID on the host.
const ChildUID = 1000

// DefaultUIDBase is the host uid the sandbox's uid 0 maps to when a Spec
// names none.
const DefaultUIDBase = 1 << 20

// HostUID reports the host uid a fully isolated child started by a root
// gateway writes files as: the owner its write grants need.
func (s Spec) HostUID() uint32 {
	base := s.UIDBase
	if base == 0 {
		base = DefaultUIDBase
	}
	return base + ChildUID
}

// ErrIsolationUnavailable is wrapped by the errors of a host that cannot
// isolate a child fully (missing kernel features, another OS).
var ErrIsolationUnavailable = errors.New("full isolation unavailable")

// Exit explains why a child ended, as far as the sandbox knows.
type Exit struct {
	// Limit names the resource limit that killed the child ("memory",
	// "pids"), or is empty.
	Limit string
}

// Child is one child process on its way to running.
type Child struct {
	// Cmd is the process to start. The caller sets its standard streams (or
	// hands it to an MCP command transport), starts it, then calls Started;
	// once it has exited and been waited for, the caller calls Finish.
	Cmd *exec.Cmd

	sandbox *sandboxed // nil without isolation
}

// Command builds the child for spec. Full isolation fails here, with an
// error naming the missing feature, if the host cannot provide it.
func Command(spec Spec) (*Child, error) {
	if len(spec.Argv) == 0 || spec.Argv[0] == "" {
		return nil, errors.New("build command: empty argv")
	}
	if spec.Isolation == IsolationNone {
		cmd, err := plainCommand(spec)
		if err != nil {
			return nil, err
		}
		return &Child{Cmd: cmd}, nil
	}
	if _, ok := strength[spec.Isolation]; !ok {
		return nil, fmt.Errorf("build command: unknown isolation %q", spec.Isolation)
	}
	return sandboxCommand(spec)
}

// Check reports, starting nothing, why Command(spec) would fail: the
// isolation the host offers, the program, the grants (a write grant must
// be writable by the sandbox's uid) and the egress allowlist.
func Check(spec Spec) error {
	if len(spec.Argv) == 0 || spec.Argv[0] == "" {
		return errors.New("build command: empty argv")
	}
	if spec.Isolation == IsolationNone {
		_, err := lookPath(spec.Argv)
		return err
	}
	return checkSandboxed(spec)
}

// Launch calls start, which must start Cmd on the calling goroutine
// (cmd.Start, or an MCP command transport's Connect), from where the child
// is best born: inside its cgroup, when the host allows it. Starting Cmd
// without Launch works too; the child then joins its cgroup in Started.
func (c *Child) Launch(start func() error) error {
	if c.sandbox == nil {
		return start()
	}
	return c.sandbox.launch(start)
}

// Started completes the start after Cmd.Start succeeded: it moves the
// sandbox into its cgroup, releases it, and waits until the tool has been
// launched inside (or the sandbox reports why it could not be). On error
// the caller kills Cmd, waits for it and calls Finish.
func (c *Child) Started(ctx context.Context) error {
	if c.sandbox == nil {
		return nil
	}
	return c.sandbox.started(ctx, c.Cmd)
}

// Finish releases what the child held once Cmd has exited: what is left of
// its process group, its cgroup and its egress proxy. It reports why the
// child ended and may be called more than once.
func (c *Child) Finish() Exit {
	KillGroup(c.Cmd)
	if c.sandbox == nil {
		return Exit{}
	}
	return c.sandbox.finish()
}

func lookPath(argv []string) (string, error) {
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return "", fmt.Errorf("build command: %w", err)
	}
	return path, nil
}
