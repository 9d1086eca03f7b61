package sandbox

import (
	"errors"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Landlock through its raw syscalls, so that the ruleset binds exactly the
// calling OS thread (the init's locked one, which forks the tool): no
// library silently downgrading to "best effort", no all-threads machinery.

// landlockMaxABI is the newest Landlock ABI whose rights this code knows.
// A newer kernel is used at this level: every right we know is handled.
const landlockMaxABI = 7

// landlockABI returns the kernel's Landlock ABI version.
func landlockABI() (int, error) {
	v, _, errno := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0, unix.LANDLOCK_CREATE_RULESET_VERSION)
	switch {
	case errno == unix.ENOSYS:
		return 0, errors.New("landlock: not built into this kernel")
	case errno == unix.EOPNOTSUPP:
		return 0, errors.New("landlock: disabled at boot (add landlock to the lsm= kernel parameter)")
	case errno != 0:
		return 0, fmt.Errorf("landlock: %w", errno)
	}
	return int(v), nil
}

// Filesystem rights by the ABI that introduced them.
const (
	llExecute   = unix.LANDLOCK_ACCESS_FS_EXECUTE
	llWriteFile = unix.LANDLOCK_ACCESS_FS_WRITE_FILE
	llReadFile  = unix.LANDLOCK_ACCESS_FS_READ_FILE
	llReadDir   = unix.LANDLOCK_ACCESS_FS_READ_DIR
	llABI1      = 1<<13 - 1 // EXECUTE through MAKE_SYM
	llRefer     = unix.LANDLOCK_ACCESS_FS_REFER
	llTruncate  = unix.LANDLOCK_ACCESS_FS_TRUNCATE
	llIoctlDev  = unix.LANDLOCK_ACCESS_FS_IOCTL_DEV
	// llFileRights are the rights meaningful on a file (the others are
	// refused with EINVAL on a non-directory).
	llFileRights = llExecute | llWriteFile | llReadFile | llTruncate | llIoctlDev
)

func handledFS(abi int) uint64 {
	r := uint64(llABI1)
	if abi >= 2 {
		r |= llRefer
	}
	if abi >= 3 {
		r |= llTruncate
	}
	if abi >= 5 {
		r |= llIoctlDev
	}
	return r
}

// Access levels for landlockRule.
const (
	llRead    = llReadFile | llReadDir
	llReadExe = llRead | llExecute
)

// landlockRule grants access beneath path (or to the file path).
type landlockRule struct {
	path   string
	access uint64 // 0 means every handled right
}

// The kernel's structs: landlock_ruleset_attr as of ABI 6, and the packed
// path-beneath and net-port attributes.
type rulesetAttr struct {
	handledFS, handledNet, scoped uint64
}

type pathBeneathAttr struct {
	allowed  uint64
	parentFD int32
}

type netPortAttr struct {
	allowed, port uint64
}

// newLandlockRuleset builds the ruleset: every filesystem right the ABI
// knows is handled (denied unless a rule grants it), TCP bind and connect
// are denied except a connect to proxyPort (0: none), and, from ABI 6,
// signals and abstract unix sockets cannot cross the sandbox's domain.
// The rules' paths are opened now, as the namespace's root. exe, if not
// negative, is a descriptor of a file the sandbox may read and execute.
func newLandlockRuleset(abi int, rules []landlockRule, exe int, proxyPort uint16) (int, error) {
	abi = min(abi, landlockMaxABI)
	attr := rulesetAttr{handledFS: handledFS(abi)}
	size := unsafe.Sizeof(attr.handledFS)
	if abi >= 4 {
		attr.handledNet = unix.LANDLOCK_ACCESS_NET_BIND_TCP | unix.LANDLOCK_ACCESS_NET_CONNECT_TCP
		size = unsafe.Offsetof(attr.scoped)
	}
	if abi >= 6 {
		attr.scoped = unix.LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET | unix.LANDLOCK_SCOPE_SIGNAL
		size = unsafe.Sizeof(attr)
	}
	fd, _, errno := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, uintptr(unsafe.Pointer(&attr)), size, 0)
	if errno != 0 {
		return -1, fmt.Errorf("create landlock ruleset: %w", errno)
	}
	ruleset := int(fd)
	fail := func(err error) (int, error) {
		unix.Close(ruleset)
		return -1, err
	}
	for _, r := range rules {
		if err := addPathRule(ruleset, r, attr.handledFS); err != nil {
			return fail(err)
		}
	}
	if exe >= 0 {
		if err := addFDRule(ruleset, exe, "own executable", llReadFile|llExecute, attr.handledFS); err != nil {
			return fail(err)
		}
	}
	if abi >= 4 && proxyPort != 0 {
		rule := netPortAttr{allowed: unix.LANDLOCK_ACCESS_NET_CONNECT_TCP, port: uint64(proxyPort)}
		if _, _, errno := unix.Syscall6(unix.SYS_LANDLOCK_ADD_RULE, uintptr(ruleset), 2 /* LANDLOCK_RULE_NET_PORT */, uintptr(unsafe.Pointer(&rule)), 0, 0, 0); errno != 0 {
			return fail(fmt.Errorf("add landlock rule for the egress proxy: %w", errno))
		}
	}
	return ruleset, nil
}

func addPathRule(ruleset int, r landlockRule, handled uint64) error {
	fd, err := unix.Open(r.path, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("add landlock rule for %s: %w", r.path, err)
	}
	defer unix.Close(fd)
	return addFDRule(ruleset, fd, r.path, r.access, handled)
}

// addFDRule grants access (0: every handled right) beneath the file or
// directory fd refers to.
func addFDRule(ruleset, fd int, name string, access, handled uint64) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("add landlock rule for %s: %w", name, err)
	}
	if access == 0 {
		access = handled
	}
	access &= handled
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		access &= llFileRights
	}
	attr := pathBeneathAttr{allowed: access, parentFD: int32(fd)}
	if _, _, errno := unix.Syscall6(unix.SYS_LANDLOCK_ADD_RULE, uintptr(ruleset), unix.LANDLOCK_RULE_PATH_BENEATH, uintptr(unsafe.Pointer(&attr)), 0, 0, 0); errno != 0 {
		return fmt.Errorf("add landlock rule for %s: %w", name, errno)
	}
	return nil
}

// restrictSelf enforces the ruleset on the calling thread (and what it
// forks). no_new_privs must be set.
func restrictSelf(ruleset int) error {
	defer unix.Close(ruleset)
	if _, _, errno := unix.Syscall(unix.SYS_LANDLOCK_RESTRICT_SELF, uintptr(ruleset), 0, 0); errno != 0 {
		return fmt.Errorf("enforce landlock ruleset: %w", errno)
	}
	return nil
}

// sandboxRules are the Landlock rules matching the sandbox's filesystem:
// read and execute the system, read /etc and /proc, use the devices and
// scratch space, and the grants as configured.
func sandboxRules(cfg *initConfig) []landlockRule {
	rules := []landlockRule{
		{path: "/", access: llReadDir},
		{path: "/etc", access: llRead},
		{path: "/proc", access: llRead},
		{path: "/tmp"},
		{path: "/dev/shm"},
	}
	if cfg.Level == IsolationLandlockOnly {
		// The host's own filesystem: no listing of /, only the /etc files
		// a sandbox would get, and no shared scratch space (TMPDIR is the
		// state directory).
		rules = []landlockRule{{path: "/proc", access: llRead}}
		for _, f := range etcFiles {
			if _, err := os.Stat(f); err == nil {
				rules = append(rules, landlockRule{path: f, access: llRead})
			}
		}
	}
	for _, d := range systemDirs {
		if fi, err := os.Lstat(d); err == nil && fi.IsDir() {
			rules = append(rules, landlockRule{path: d, access: llReadExe})
		}
	}
	for _, d := range devices {
		if _, err := os.Stat("/dev/" + d); err == nil {
			rules = append(rules, landlockRule{path: "/dev/" + d, access: llReadFile | llWriteFile | llIoctlDev})
		}
	}
	for _, b := range cfg.Binds {
		r := landlockRule{path: b.Dst, access: llReadExe}
		if b.Write {
			r.access = 0
		}
		rules = append(rules, r)
	}
	return rules
}
