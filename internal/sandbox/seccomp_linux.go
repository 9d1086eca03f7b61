//go:build linux && (amd64 || arm64)

package sandbox

import (
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// The seccomp filter is a denylist: stdio servers are arbitrary node or
// python programs, so anything not known to be dangerous is allowed. What is
// denied follows Docker's default profile: syscalls that reach kernel-global
// state (mounts, modules, clocks, keyring, kexec), that widen the attack
// surface (bpf, io_uring, userfaultfd, perf), that inspect other processes
// (ptrace, process_vm_*), or that create namespaces, which would let the child
// undo the rest of the sandbox from a fresh user namespace.

// Offsets into struct seccomp_data {int nr; __u32 arch; __u64
// instruction_pointer; __u64 args[6];}. Classic BPF loads 32-bit words in
// host order; amd64 and arm64 are little-endian, so an argument's low word is
// at the argument's own offset.
const (
	seccompDataNr   = 0
	seccompDataArch = 4
	seccompDataArgs = 16
)

// argLow returns the offset of the low 32 bits of syscall argument i.
func argLow(i uint32) uint32 { return seccompDataArgs + 8*i }

// Return values of the filter.
const (
	retAllow  = unix.SECCOMP_RET_ALLOW
	retEPERM  = unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)
	retENOSYS = unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)
	// KILL_PROCESS, not KILL_THREAD: a process with one thread silently gone
	// is harder to reason about than a process that died of SIGSYS.
	retKill = unix.SECCOMP_RET_KILL_PROCESS
)

// cloneNewFlags are the namespace-creating clone flags. CLONE_NEWTIME
// overlaps CSIGNAL (clone's exit-signal byte) but no signal number has that
// bit, so denying it costs nothing.
const cloneNewFlags = unix.CLONE_NEWNS | unix.CLONE_NEWCGROUP | unix.CLONE_NEWUTS |
	unix.CLONE_NEWIPC | unix.CLONE_NEWUSER | unix.CLONE_NEWPID | unix.CLONE_NEWNET |
	unix.CLONE_NEWTIME

// personalityAllowed are the personality(2) arguments Docker allows: PER_LINUX,
// PER_LINUX32, UNAME26, PER_LINUX32|UNAME26 and the 0xffffffff query. Anything
// else (ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC, ...) weakens the child's own
// exploit mitigations.
var personalityAllowed = []uint32{0x0, 0x8, 0x20000, 0x20008, 0xffffffff}

// deniedSyscall is one syscall the filter answers with EPERM.
type deniedSyscall struct {
	name string
	nr   uintptr
}

// deniedSyscalls returns the EPERM list for the running architecture. clone,
// clone3 and personality are not in it: the filter checks their arguments.
// Left allowed on purpose: landlock_* and seccomp (stacking only tightens),
// memfd_secret, and the NUMA calls (mbind, set_mempolicy, get_mempolicy,
// migrate_pages, move_pages) that runtimes probe.
func deniedSyscalls() []deniedSyscall {
	common := []deniedSyscall{
		// Mounts and namespaces.
		{"mount", unix.SYS_MOUNT},
		{"umount2", unix.SYS_UMOUNT2},
		{"pivot_root", unix.SYS_PIVOT_ROOT},
		{"chroot", unix.SYS_CHROOT},
		{"unshare", unix.SYS_UNSHARE},
		{"setns", unix.SYS_SETNS},
		{"open_tree", unix.SYS_OPEN_TREE},
		{"open_tree_attr", unix.SYS_OPEN_TREE_ATTR},
		{"move_mount", unix.SYS_MOVE_MOUNT},
		{"fsopen", unix.SYS_FSOPEN},
		{"fsconfig", unix.SYS_FSCONFIG},
		{"fsmount", unix.SYS_FSMOUNT},
		{"fspick", unix.SYS_FSPICK},
		{"mount_setattr", unix.SYS_MOUNT_SETATTR},
		// Other processes.
		{"ptrace", unix.SYS_PTRACE},
		{"process_vm_readv", unix.SYS_PROCESS_VM_READV},
		{"process_vm_writev", unix.SYS_PROCESS_VM_WRITEV},
		{"process_madvise", unix.SYS_PROCESS_MADVISE},
		{"kcmp", unix.SYS_KCMP},
		{"pidfd_getfd", unix.SYS_PIDFD_GETFD},
		// Kernel attack surface.
		{"bpf", unix.SYS_BPF},
		{"perf_event_open", unix.SYS_PERF_EVENT_OPEN},
		{"userfaultfd", unix.SYS_USERFAULTFD},
		{"io_uring_setup", unix.SYS_IO_URING_SETUP},
		{"io_uring_enter", unix.SYS_IO_URING_ENTER},
		{"io_uring_register", unix.SYS_IO_URING_REGISTER},
		{"fanotify_init", unix.SYS_FANOTIFY_INIT},
		{"lsm_set_self_attr", unix.SYS_LSM_SET_SELF_ATTR},
		// Keyring (not namespaced).
		{"keyctl", unix.SYS_KEYCTL},
		{"add_key", unix.SYS_ADD_KEY},
		{"request_key", unix.SYS_REQUEST_KEY},
		// Kernel images and modules.
		{"kexec_load", unix.SYS_KEXEC_LOAD},
		{"kexec_file_load", unix.SYS_KEXEC_FILE_LOAD},
		{"init_module", unix.SYS_INIT_MODULE},
		{"finit_module", unix.SYS_FINIT_MODULE},
		{"delete_module", unix.SYS_DELETE_MODULE},
		// File handles bypass path-based checks (the "shocker" escape).
		{"open_by_handle_at", unix.SYS_OPEN_BY_HANDLE_AT},
		{"name_to_handle_at", unix.SYS_NAME_TO_HANDLE_AT},
		// Host-global administration.
		{"acct", unix.SYS_ACCT},
		{"swapon", unix.SYS_SWAPON},
		{"swapoff", unix.SYS_SWAPOFF},
		{"reboot", unix.SYS_REBOOT},
		{"sethostname", unix.SYS_SETHOSTNAME},
		{"setdomainname", unix.SYS_SETDOMAINNAME},
		{"syslog", unix.SYS_SYSLOG},
		{"settimeofday", unix.SYS_SETTIMEOFDAY},
		{"clock_settime", unix.SYS_CLOCK_SETTIME},
		{"clock_adjtime", unix.SYS_CLOCK_ADJTIME},
		{"adjtimex", unix.SYS_ADJTIMEX},
		{"quotactl", unix.SYS_QUOTACTL},
		{"quotactl_fd", unix.SYS_QUOTACTL_FD},
		{"lookup_dcookie", unix.SYS_LOOKUP_DCOOKIE},
		{"nfsservctl", unix.SYS_NFSSERVCTL},
		{"vhangup", unix.SYS_VHANGUP},
	}
	return append(common, archDeniedSyscalls...)
}

// seccompProgram returns the assembled filter for the running architecture.
func seccompProgram() ([]bpf.RawInstruction, error) {
	insns, err := seccompInstructions()
	if err != nil {
		return nil, fmt.Errorf("build seccomp filter: %w", err)
	}
	raw, err := bpf.Assemble(insns)
	if err != nil {
		return nil, fmt.Errorf("assemble seccomp filter: %w", err)
	}
	return raw, nil
}

// seccompInstructions lays out the filter:
//
//	arch != native                      -> KILL_PROCESS
//	nr has the x32 bit (amd64)          -> KILL_PROCESS
//	clone3                              -> ENOSYS
//	clone with a CLONE_NEW* flag        -> EPERM
//	personality outside the allowed set -> EPERM
//	denylisted nr                       -> EPERM
//	anything else                       -> ALLOW
func seccompInstructions() ([]bpf.Instruction, error) {
	var b progBuilder

	// The arch check comes first: the same process can enter the kernel
	// through another ABI (int 0x80 on amd64), whose syscall numbers differ,
	// so every number check below would be meaningless for it.
	b.load(seccompDataArch)
	b.jumpIf(bpf.JumpEqual, nativeAuditArch, "", "kill")
	b.load(seccompDataNr)
	if x32SyscallBit != 0 {
		// x32 syscalls share the arch value with x86_64 and are told apart
		// only by this bit in nr.
		b.jumpIf(bpf.JumpBitsSet, x32SyscallBit, "kill", "")
	}

	seen := map[uintptr]string{}
	special := []deniedSyscall{
		{"clone3", unix.SYS_CLONE3},
		{"clone", unix.SYS_CLONE},
		{"personality", unix.SYS_PERSONALITY},
	}
	for _, s := range append(special, deniedSyscalls()...) {
		if prev, dup := seen[s.nr]; dup {
			return nil, fmt.Errorf("check syscall %s: number %d already used by %s", s.name, s.nr, prev)
		}
		seen[s.nr] = s.name
	}

	// clone3 passes its flags in memory, which BPF cannot read: ENOSYS makes
	// glibc (and others) fall back to clone, whose flags are in a register.
	b.jumpIf(bpf.JumpEqual, uint32(unix.SYS_CLONE3), "enosys", "")
	b.jumpIf(bpf.JumpEqual, uint32(unix.SYS_CLONE), "clone", "")
	b.jumpIf(bpf.JumpEqual, uint32(unix.SYS_PERSONALITY), "personality", "")
	for _, s := range deniedSyscalls() {
		b.jumpIf(bpf.JumpEqual, uint32(s.nr), "eperm", "")
	}
	b.ret(retAllow)

	// clone's flags are arg 0 on both amd64 and arm64; the kernel uses only
	// their low 32 bits.
	b.label("clone")
	b.load(argLow(0))
	b.jumpIf(bpf.JumpBitsSet, cloneNewFlags, "eperm", "allow")

	// personality takes an unsigned int: the low word is the whole value.
	b.label("personality")
	b.load(argLow(0))
	for _, v := range personalityAllowed {
		b.jumpIf(bpf.JumpEqual, v, "allow", "")
	}
	// Falls through to eperm.

	b.label("eperm")
	b.ret(retEPERM)
	b.label("allow")
	b.ret(retAllow)
	b.label("enosys")
	b.ret(retENOSYS)
	b.label("kill")
	b.ret(retKill)

	return b.build()
}

// progBuilder assembles straight-line BPF with named forward jump targets, so
// that no skip count is computed by hand.
type progBuilder struct {
	insns  []bpf.Instruction
	labels map[string]int
	fixups []jumpFixup
	err    error
}

// jumpFixup records a conditional jump whose targets are labels ("" is the
// next instruction).
type jumpFixup struct {
	at              int
	ifTrue, ifFalse string
}

func (b *progBuilder) load(off uint32) {
	b.insns = append(b.insns, bpf.LoadAbsolute{Off: off, Size: 4})
}

func (b *progBuilder) ret(v uint32) {
	b.insns = append(b.insns, bpf.RetConstant{Val: v})
}

func (b *progBuilder) jumpIf(cond bpf.JumpTest, val uint32, ifTrue, ifFalse string) {
	b.fixups = append(b.fixups, jumpFixup{at: len(b.insns), ifTrue: ifTrue, ifFalse: ifFalse})
	b.insns = append(b.insns, bpf.JumpIf{Cond: cond, Val: val})
}

func (b *progBuilder) label(name string) {
	if b.labels == nil {
		b.labels = map[string]int{}
	}
	if _, dup := b.labels[name]; dup && b.err == nil {
		b.err = fmt.Errorf("define label %q: defined twice", name)
	}
	b.labels[name] = len(b.insns)
}

// build resolves jump targets. Classic BPF only jumps forward, at most 255
// instructions for a conditional jump.
func (b *progBuilder) build() ([]bpf.Instruction, error) {
	if b.err != nil {
		return nil, b.err
	}
	skip := func(from int, label string) (uint8, error) {
		if label == "" {
			return 0, nil
		}
		to, ok := b.labels[label]
		if !ok {
			return 0, fmt.Errorf("resolve label %q: undefined", label)
		}
		n := to - from - 1
		if n < 0 || n > 255 {
			return 0, fmt.Errorf("resolve label %q: jump of %d from %d out of range", label, n, from)
		}
		return uint8(n), nil
	}
	for _, f := range b.fixups {
		j := b.insns[f.at].(bpf.JumpIf)
		var err error
		if j.SkipTrue, err = skip(f.at, f.ifTrue); err != nil {
			return nil, err
		}
		if j.SkipFalse, err = skip(f.at, f.ifFalse); err != nil {
			return nil, err
		}
		b.insns[f.at] = j
	}
	if len(b.insns) > bpfMaxInstructions {
		return nil, fmt.Errorf("check program size: %d instructions", len(b.insns))
	}
	return b.insns, nil
}

// bpfMaxInstructions is the kernel's BPF_MAXINSNS for classic BPF.
const bpfMaxInstructions = 4096

// installSeccomp installs prog on the calling OS thread only (no TSYNC).
// The caller must hold the thread (runtime.LockOSThread) and must have set
// no_new_privs; it returns a wrapped error ("install seccomp filter: %w").
func installSeccomp(prog []bpf.RawInstruction) error {
	if len(prog) == 0 || len(prog) > bpfMaxInstructions {
		return fmt.Errorf("install seccomp filter: %w", errors.New("program length out of range"))
	}
	filter := make([]unix.SockFilter, len(prog))
	for i, ins := range prog {
		filter[i] = unix.SockFilter{Code: ins.Op, Jt: ins.Jt, Jf: ins.Jf, K: ins.K}
	}
	fprog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	// Flags 0, never SECCOMP_FILTER_FLAG_TSYNC: the filter must bind only
	// this thread (and what it forks), not the caller's other threads.
	_, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, 0, uintptr(unsafe.Pointer(&fprog)))
	if errno != 0 {
		return fmt.Errorf("install seccomp filter: %w", errno)
	}
	return nil
}
