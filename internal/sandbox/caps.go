package sandbox

import (
	"errors"
	"fmt"
	"sync"
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
	// RootNamespaces is nil when a root gateway can start a child in new
	// pid, mount, network, ipc, uts and cgroup namespaces without a user
	// namespace (the no-userns level).
	RootNamespaces error
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
	if err := c.Offers(IsolationFull); err != nil {
		return fmt.Errorf("%w: %w", ErrIsolationUnavailable, err)
	}
	return nil
}

// Offers reports what level lacks here, or nil.
func (c Capabilities) Offers(level Isolation) error {
	var errs []error
	switch level {
	case IsolationNone:
		return nil
	case IsolationFull, "":
		if c.UserNamespaces != nil {
			errs = append(errs, fmt.Errorf("user namespaces: %w", c.UserNamespaces))
		}
	case IsolationNoUserNS:
		if c.RootNamespaces != nil {
			errs = append(errs, fmt.Errorf("namespaces without a user namespace: %w", c.RootNamespaces))
		}
	case IsolationLandlockOnly:
		if c.LandlockErr == nil && c.Landlock < 4 {
			// Without a network namespace, only Landlock's TCP rules
			// (ABI 4) keep the tool off the network.
			errs = append(errs, fmt.Errorf("landlock ABI %d has no network rules (4 needed)", c.Landlock))
		}
	default:
		return fmt.Errorf("unknown isolation %q", level)
	}
	if c.LandlockErr != nil {
		errs = append(errs, c.LandlockErr)
	}
	if c.Seccomp != nil {
		errs = append(errs, fmt.Errorf("seccomp: %w", c.Seccomp))
	}
	return errors.Join(errs...)
}
