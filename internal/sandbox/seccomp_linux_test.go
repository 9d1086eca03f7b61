//go:build linux && (amd64 || arm64)

package sandbox

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/mcpgate/mcpgate/internal/sandbox/internal/int80"
)

// seccompVM runs the assembled program (the exact bytes installSeccomp would
// load, disassembled) in x/net/bpf's VM.
func seccompVM(t testing.TB) *bpf.VM {
	t.Helper()
	raw, err := seccompProgram()
	if err != nil {
		t.Fatal(err)
	}
	insns, ok := bpf.Disassemble(raw)
	if !ok {
		t.Fatal("disassemble seccomp program: some instructions not decoded")
	}
	vm, err := bpf.NewVM(insns)
	if err != nil {
		t.Fatalf("load seccomp program into bpf.VM: %v", err)
	}
	return vm
}

// seccompData builds the VM's view of struct seccomp_data. The kernel's
// seccomp loads 32-bit words in host order (little-endian here), while
// x/net/bpf's VM treats its input as a network packet and loads big-endian.
// So each 32-bit word is written big-endian at the offset the kernel's
// little-endian layout gives it: a u64 argument's low word at the
// argument's offset, its high word 4 bytes later.
func seccompData(nr, arch uint32, args ...uint64) []byte {
	b := make([]byte, 64)
	binary.BigEndian.PutUint32(b[0:], nr)
	binary.BigEndian.PutUint32(b[4:], arch)
	// instruction_pointer at 8..15 stays zero.
	for i, a := range args {
		off := 16 + 8*i
		binary.BigEndian.PutUint32(b[off:], uint32(a))
		binary.BigEndian.PutUint32(b[off+4:], uint32(a>>32))
	}
	return b
}

func runSeccomp(t testing.TB, vm *bpf.VM, data []byte) uint32 {
	t.Helper()
	v, err := vm.Run(data)
	if err != nil {
		t.Fatalf("run seccomp program: %v", err)
	}
	return uint32(v)
}

func actionName(v uint32) string {
	switch v {
	case retAllow:
		return "ALLOW"
	case retEPERM:
		return "ERRNO(EPERM)"
	case retENOSYS:
		return "ERRNO(ENOSYS)"
	case retKill:
		return "KILL_PROCESS"
	}
	return fmt.Sprintf("%#x", v)
}

// personality(2) flags from <linux/personality.h>, absent from x/sys/unix.
const (
	addrNoRandomize = 0x0040000
	readImpliesExec = 0x0400000
)

// The thread clone glibc's pthread_create and node's worker threads issue.
const threadCloneFlags = unix.CLONE_VM | unix.CLONE_FS | unix.CLONE_FILES | unix.CLONE_SIGHAND |
	unix.CLONE_THREAD | unix.CLONE_SYSVSEM | unix.CLONE_SETTLS | unix.CLONE_PARENT_SETTID |
	unix.CLONE_CHILD_CLEARTID

// requiredDenied is written out independently of deniedSyscalls so that a
// name dropped from the filter's list fails the test.
var requiredDenied = map[string]uintptr{
	"mount": unix.SYS_MOUNT, "umount2": unix.SYS_UMOUNT2, "pivot_root": unix.SYS_PIVOT_ROOT,
	"chroot": unix.SYS_CHROOT, "unshare": unix.SYS_UNSHARE, "setns": unix.SYS_SETNS,
	"open_tree": unix.SYS_OPEN_TREE, "move_mount": unix.SYS_MOVE_MOUNT, "fsopen": unix.SYS_FSOPEN,
	"fsconfig": unix.SYS_FSCONFIG, "fsmount": unix.SYS_FSMOUNT, "fspick": unix.SYS_FSPICK,
	"mount_setattr": unix.SYS_MOUNT_SETATTR, "ptrace": unix.SYS_PTRACE,
	"process_vm_readv": unix.SYS_PROCESS_VM_READV, "process_vm_writev": unix.SYS_PROCESS_VM_WRITEV,
	"process_madvise": unix.SYS_PROCESS_MADVISE, "bpf": unix.SYS_BPF,
	"perf_event_open": unix.SYS_PERF_EVENT_OPEN, "keyctl": unix.SYS_KEYCTL, "add_key": unix.SYS_ADD_KEY,
	"request_key": unix.SYS_REQUEST_KEY, "userfaultfd": unix.SYS_USERFAULTFD,
	"io_uring_setup": unix.SYS_IO_URING_SETUP, "io_uring_enter": unix.SYS_IO_URING_ENTER,
	"io_uring_register": unix.SYS_IO_URING_REGISTER, "kexec_load": unix.SYS_KEXEC_LOAD,
	"kexec_file_load": unix.SYS_KEXEC_FILE_LOAD, "init_module": unix.SYS_INIT_MODULE,
	"finit_module": unix.SYS_FINIT_MODULE, "delete_module": unix.SYS_DELETE_MODULE,
	"open_by_handle_at": unix.SYS_OPEN_BY_HANDLE_AT, "name_to_handle_at": unix.SYS_NAME_TO_HANDLE_AT,
	"acct": unix.SYS_ACCT, "swapon": unix.SYS_SWAPON, "swapoff": unix.SYS_SWAPOFF,
	"reboot": unix.SYS_REBOOT, "sethostname": unix.SYS_SETHOSTNAME,
	"setdomainname": unix.SYS_SETDOMAINNAME, "syslog": unix.SYS_SYSLOG,
	"settimeofday": unix.SYS_SETTIMEOFDAY, "clock_settime": unix.SYS_CLOCK_SETTIME,
	"clock_adjtime": unix.SYS_CLOCK_ADJTIME, "adjtimex": unix.SYS_ADJTIMEX,
	"quotactl": unix.SYS_QUOTACTL, "quotactl_fd": unix.SYS_QUOTACTL_FD,
	"lookup_dcookie": unix.SYS_LOOKUP_DCOOKIE, "nfsservctl": unix.SYS_NFSSERVCTL,
	"vhangup": unix.SYS_VHANGUP, "kcmp": unix.SYS_KCMP, "pidfd_getfd": unix.SYS_PIDFD_GETFD,
	"fanotify_init": unix.SYS_FANOTIFY_INIT, "lsm_set_self_attr": unix.SYS_LSM_SET_SELF_ATTR,
}

func TestSeccompProgramActions(t *testing.T) {
	vm := seccompVM(t)
	raw, _ := seccompProgram()
	t.Logf("seccomp program: %d instructions", len(raw))

	type tc struct {
		name string
		data []byte
		want uint32
	}
	native := uint32(nativeAuditArch)
	cases := []tc{
		{"getpid", seccompData(unix.SYS_GETPID, native), retAllow},
		{"read", seccompData(unix.SYS_READ, native, 0, 0, 4096), retAllow},
		{"write", seccompData(unix.SYS_WRITE, native, 1, 0, 1), retAllow},
		{"openat", seccompData(unix.SYS_OPENAT, native, uint64(0xffffff9c), 0, 0), retAllow},
		{"execve", seccompData(unix.SYS_EXECVE, native), retAllow},
		{"landlock_create_ruleset", seccompData(unix.SYS_LANDLOCK_CREATE_RULESET, native), retAllow},
		{"seccomp", seccompData(unix.SYS_SECCOMP, native), retAllow},
		{"get_mempolicy", seccompData(unix.SYS_GET_MEMPOLICY, native), retAllow},
		{"clone fork", seccompData(unix.SYS_CLONE, native, uint64(unix.SIGCHLD)), retAllow},
		{"clone vfork", seccompData(unix.SYS_CLONE, native, unix.CLONE_VM|unix.CLONE_VFORK|uint64(unix.SIGCHLD)), retAllow},
		{"clone thread", seccompData(unix.SYS_CLONE, native, threadCloneFlags), retAllow},
		// A namespace bit only in the high word is ignored by the kernel
		// (it uses the low 32 bits of clone's flags), so it may pass.
		{"clone high word", seccompData(unix.SYS_CLONE, native, uint64(unix.CLONE_NEWUSER)<<32|uint64(unix.SIGCHLD)), retAllow},
		{"clone3", seccompData(unix.SYS_CLONE3, native, 0, 88), retENOSYS},
		{"personality(PER_LINUX)", seccompData(unix.SYS_PERSONALITY, native, 0), retAllow},
		{"personality(query)", seccompData(unix.SYS_PERSONALITY, native, 0xffffffff), retAllow},
		{"personality(PER_LINUX32)", seccompData(unix.SYS_PERSONALITY, native, 8), retAllow},
		{"personality(ADDR_NO_RANDOMIZE)", seccompData(unix.SYS_PERSONALITY, native, addrNoRandomize), retEPERM},
		{"personality(READ_IMPLIES_EXEC)", seccompData(unix.SYS_PERSONALITY, native, readImpliesExec), retEPERM},
		{"i386 getpid", seccompData(20, unix.AUDIT_ARCH_I386), retKill},
		{"i386 with native nr", seccompData(unix.SYS_GETPID, unix.AUDIT_ARCH_I386), retKill},
		{"arch zero", seccompData(unix.SYS_GETPID, 0), retKill},
	}
	if runtime.GOARCH == "amd64" {
		cases = append(cases,
			tc{"x32 getpid", seccompData(x32SyscallBit|unix.SYS_GETPID, native), retKill},
			tc{"x32 mount", seccompData(x32SyscallBit|unix.SYS_MOUNT, native), retKill},
			tc{"arch aarch64", seccompData(unix.SYS_GETPID, unix.AUDIT_ARCH_AARCH64), retKill},
		)
	} else {
		cases = append(cases, tc{"arch x86_64", seccompData(unix.SYS_GETPID, unix.AUDIT_ARCH_X86_64), retKill})
	}
	for _, name := range []string{"NEWNS", "NEWCGROUP", "NEWUTS", "NEWIPC", "NEWUSER", "NEWPID", "NEWNET", "NEWTIME"} {
		flag := map[string]uint64{
			"NEWNS": unix.CLONE_NEWNS, "NEWCGROUP": unix.CLONE_NEWCGROUP, "NEWUTS": unix.CLONE_NEWUTS,
			"NEWIPC": unix.CLONE_NEWIPC, "NEWUSER": unix.CLONE_NEWUSER, "NEWPID": unix.CLONE_NEWPID,
			"NEWNET": unix.CLONE_NEWNET, "NEWTIME": unix.CLONE_NEWTIME,
		}[name]
		cases = append(cases,
			tc{"clone " + name, seccompData(unix.SYS_CLONE, native, flag|uint64(unix.SIGCHLD)), retEPERM},
			tc{"thread clone " + name, seccompData(unix.SYS_CLONE, native, flag|threadCloneFlags), retEPERM})
	}
	for name, nr := range requiredDenied {
		cases = append(cases,
			tc{name, seccompData(uint32(nr), native), retEPERM},
			tc{name + " (i386)", seccompData(uint32(nr), unix.AUDIT_ARCH_I386), retKill})
	}
	for _, s := range archDeniedSyscalls {
		cases = append(cases, tc{s.name, seccompData(uint32(s.nr), native), retEPERM})
	}

	for _, c := range cases {
		if got := runSeccomp(t, vm, c.data); got != c.want {
			t.Errorf("%s: got %s, want %s", c.name, actionName(got), actionName(c.want))
		}
	}
}

// seccompOracle is the intended policy, spelled out without BPF.
func seccompOracle(nr, arch uint32, arg0 uint64) uint32 {
	if arch != nativeAuditArch {
		return retKill
	}
	if x32SyscallBit != 0 && nr&x32SyscallBit != 0 {
		return retKill
	}
	switch uintptr(nr) {
	case unix.SYS_CLONE3:
		return retENOSYS
	case unix.SYS_CLONE:
		if uint32(arg0)&cloneNewFlags != 0 {
			return retEPERM
		}
		return retAllow
	case unix.SYS_PERSONALITY:
		for _, v := range personalityAllowed {
			if uint32(arg0) == v {
				return retAllow
			}
		}
		return retEPERM
	}
	for _, s := range deniedSyscalls() {
		if uintptr(nr) == s.nr {
			return retEPERM
		}
	}
	return retAllow
}

func FuzzSeccompProgram(f *testing.F) {
	native := uint32(nativeAuditArch)
	f.Add(uint32(unix.SYS_GETPID), native, uint64(0), uint64(0))
	f.Add(uint32(unix.SYS_CLONE), native, uint64(unix.CLONE_NEWUSER|unix.SIGCHLD), uint64(0))
	f.Add(uint32(unix.SYS_CLONE), native, uint64(threadCloneFlags), uint64(0))
	f.Add(uint32(unix.SYS_CLONE3), native, uint64(0), uint64(88))
	f.Add(uint32(unix.SYS_MOUNT), native, uint64(0), uint64(0))
	f.Add(uint32(unix.SYS_PERSONALITY), native, uint64(0xffffffff), uint64(0))
	f.Add(uint32(20), uint32(unix.AUDIT_ARCH_I386), uint64(0), uint64(0))
	f.Add(uint32(0x40000000|unix.SYS_GETPID), native, uint64(0), uint64(0))
	f.Add(uint32(0xffffffff), native, uint64(0), uint64(0))

	vm := seccompVM(f)
	denied := map[uint32]bool{}
	for _, s := range deniedSyscalls() {
		denied[uint32(s.nr)] = true
	}
	f.Fuzz(func(t *testing.T, nr, arch uint32, arg0, arg1 uint64) {
		got := runSeccomp(t, vm, seccompData(nr, arch, arg0, arg1))
		// The invariants first, so a wrong oracle cannot hide them.
		if arch != nativeAuditArch && got != retKill {
			t.Fatalf("nr %d arch %#x: got %s, want KILL_PROCESS", nr, arch, actionName(got))
		}
		if got == retAllow {
			switch {
			case denied[nr]:
				t.Fatalf("denylisted nr %d allowed", nr)
			case uintptr(nr) == unix.SYS_CLONE3:
				t.Fatal("clone3 allowed")
			case uintptr(nr) == unix.SYS_CLONE && uint32(arg0)&cloneNewFlags != 0:
				t.Fatalf("clone with flags %#x allowed", arg0)
			}
		}
		if want := seccompOracle(nr, arch, arg0); got != want {
			t.Fatalf("nr %d arch %#x arg0 %#x: got %s, want %s", nr, arch, arg0, actionName(got), actionName(want))
		}
	})
}

// seccompChildEnv selects the case TestSeccompInChild runs; empty means the
// test is running normally and skips.
const seccompChildEnv = "MCPGATE_SECCOMP_CHILD"

// seccompChildPrefix marks the lines the child reports to the parent.
const seccompChildPrefix = "seccomp-child-result: "

// TestSeccompKernel loads the filter into the real kernel, in re-executed
// copies of this test binary, and checks what each case sees.
func TestSeccompKernel(t *testing.T) {
	// The filter must never reach the calling process: this one installs
	// nothing, and every child proves the same about its own other threads.
	assertThreadsUnfiltered(t)

	cases := []struct{ name, want string }{
		{"threads", "self=2 others=0"},
		{"getpid", "ok"},
		{"unshare", "EPERM"},
		{"setns", "EPERM"},
		{"clone3", "ENOSYS"},
		{"clone-newuser", "EPERM"},
		{"clone-newns", "EPERM"},
		{"mount", "EPERM"},
		{"personality", "query=ok no-randomize=EPERM"},
		{"forkexec", "exit 0"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, err := runSeccompChild(t, c.name)
			if err != nil {
				t.Fatalf("child: %v\n%s", err, out)
			}
			if got := childResult(out); got != c.want {
				t.Fatalf("got %q, want %q\n%s", got, c.want, out)
			}
		})
	}

	t.Run("int80", func(t *testing.T) {
		if runtime.GOARCH != "amd64" {
			t.Skip("int 0x80 exists only on amd64")
		}
		// Without the filter the i386 getpid must work, or a SIGSYS below
		// would prove nothing about the filter.
		out, err := runSeccompChild(t, "int80-nofilter")
		if err != nil {
			t.Skipf("int 0x80 unusable here (ia32 emulation off?): %v\n%s", err, out)
		}
		if got := childResult(out); got != "ok" {
			t.Fatalf("unfiltered i386 getpid: got %q\n%s", got, out)
		}
		out, err = runSeccompChild(t, "int80")
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("child survived i386 getpid (err %v)\n%s", err, out)
		}
		ws := ee.Sys().(syscall.WaitStatus)
		if !ws.Signaled() || ws.Signal() != syscall.SIGSYS {
			t.Fatalf("child exit %v, want death by SIGSYS\n%s", ws, out)
		}
	})

	assertThreadsUnfiltered(t)
}

func runSeccompChild(t *testing.T, name string) ([]byte, error) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^TestSeccompInChild$", "-test.count=1", "-test.timeout=60s")
	// The race runtime sleeps a second at exit unless told not to.
	gorace := strings.TrimSpace(os.Getenv("GORACE") + " atexit_sleep_ms=0")
	cmd.Env = append(os.Environ(), seccompChildEnv+"="+name, "GORACE="+gorace)
	return cmd.CombinedOutput()
}

func childResult(out []byte) string {
	var got []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if s, ok := strings.CutPrefix(sc.Text(), seccompChildPrefix); ok {
			got = append(got, s)
		}
	}
	return strings.Join(got, "; ")
}

// assertThreadsUnfiltered checks that no thread of this process has a
// seccomp filter.
func assertThreadsUnfiltered(t *testing.T) {
	t.Helper()
	modes, err := threadSeccompModes()
	if err != nil {
		t.Fatal(err)
	}
	for tid, mode := range modes {
		if mode != "0" {
			t.Fatalf("thread %d of the test process has Seccomp: %s", tid, mode)
		}
	}
}

// threadSeccompModes returns the Seccomp: field of every thread's status.
func threadSeccompModes() (map[int]string, error) {
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return nil, fmt.Errorf("list threads: %w", err)
	}
	modes := map[int]string{}
	for _, e := range ents {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		mode, err := seccompMode("/proc/self/task/" + e.Name() + "/status")
		if errors.Is(err, os.ErrNotExist) {
			continue // the thread exited meanwhile
		}
		if err != nil {
			return nil, err
		}
		modes[tid] = mode
	}
	return modes, nil
}

func seccompMode(statusPath string) (string, error) {
	b, err := os.ReadFile(statusPath)
	if err != nil {
		return "", fmt.Errorf("read status: %w", err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Seccomp:"); ok {
			return strings.TrimSpace(v), nil
		}
	}
	return "", fmt.Errorf("read status: no Seccomp field in %s", statusPath)
}

// TestSeccompInChild is the child half of TestSeccompKernel; run directly
// it skips.
func TestSeccompInChild(t *testing.T) {
	name := os.Getenv(seccompChildEnv)
	if name == "" {
		t.Skip("helper for TestSeccompKernel")
	}
	report := func(format string, args ...any) {
		fmt.Printf(seccompChildPrefix+format+"\n", args...)
	}
	// Never unlocked: when this goroutine ends, the runtime retires the
	// filtered thread instead of reusing it.
	runtime.LockOSThread()

	// No stray core file from the SIGSYS case.
	if err := unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{}); err != nil {
		t.Fatal(err)
	}
	if name == "int80-nofilter" {
		if r := int80.Syscall(20, 0, 0, 0); int(r) == os.Getpid() {
			report("ok")
		} else {
			report("got %d", int(r))
		}
		return
	}

	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	prog, err := seccompProgram()
	if err != nil {
		t.Fatal(err)
	}
	if err := installSeccomp(prog); err != nil {
		t.Fatal(err)
	}

	errName := func(err error) string {
		var errno syscall.Errno
		if errors.As(err, &errno) {
			if errno == 0 {
				return "success"
			}
			return unix.ErrnoName(errno)
		}
		if err == nil {
			return "success"
		}
		return err.Error()
	}

	switch name {
	case "threads":
		self, err := seccompMode("/proc/thread-self/status")
		if err != nil {
			t.Fatal(err)
		}
		modes, err := threadSeccompModes()
		if err != nil {
			t.Fatal(err)
		}
		others := 0
		for tid, mode := range modes {
			if tid != unix.Gettid() && mode != "0" {
				others++
			}
		}
		// More than one thread, or "others=0" proves nothing.
		if len(modes) < 2 {
			t.Fatalf("only %d thread(s)", len(modes))
		}
		report("self=%s others=%d", self, others)
	case "getpid":
		r, _, errno := unix.RawSyscall(unix.SYS_GETPID, 0, 0, 0)
		if errno != 0 || int(r) != os.Getpid() {
			report("getpid = %d, %v", r, errno)
			return
		}
		report("ok")
	case "unshare":
		// Unfiltered, a multi-threaded process gets EINVAL here.
		report("%s", errName(unix.Unshare(unix.CLONE_NEWUSER)))
	case "setns":
		// Unfiltered: EBADF.
		report("%s", errName(unix.Setns(-1, 0)))
	case "clone3":
		// Unfiltered, a NULL args pointer with size 0 gets EINVAL, so a
		// missing filter cannot fork this process.
		_, _, errno := unix.RawSyscall(unix.SYS_CLONE3, 0, 0, 0)
		report("%s", errName(errno))
	case "clone-newuser", "clone-newns":
		flag := uintptr(unix.CLONE_NEWUSER)
		if name == "clone-newns" {
			flag = unix.CLONE_NEWNS
		}
		// CLONE_FS makes the kernel refuse (EINVAL) both combinations, so
		// a missing filter cannot fork this process either.
		_, _, errno := unix.RawSyscall6(unix.SYS_CLONE, flag|unix.CLONE_FS|uintptr(unix.SIGCHLD), 0, 0, 0, 0, 0)
		report("%s", errName(errno))
	case "mount":
		// Unfiltered as root: ENOENT (the target does not exist). Unfiltered
		// without CAP_SYS_ADMIN the kernel itself says EPERM; the VM test
		// covers that case.
		err := unix.Mount("none", "/nonexistent/mcpgate-seccomp-test", "tmpfs", 0, "")
		report("%s", errName(err))
	case "personality":
		q, _, errno := unix.RawSyscall(unix.SYS_PERSONALITY, 0xffffffff, 0, 0)
		qs := "ok"
		if errno != 0 {
			qs = errName(errno)
		}
		// Unfiltered, this succeeds.
		_, _, errno = unix.RawSyscall(unix.SYS_PERSONALITY, q|addrNoRandomize, 0, 0)
		report("query=%s no-randomize=%s", qs, errName(errno))
	case "forkexec":
		// syscall.ForkExec clones from this (locked, filtered) thread;
		// os/exec might not.
		pid, err := syscall.ForkExec("/bin/true", []string{"true"}, &syscall.ProcAttr{})
		if err != nil {
			report("forkexec: %s", errName(err))
			return
		}
		var ws syscall.WaitStatus
		if _, err := syscall.Wait4(pid, &ws, 0, nil); err != nil {
			t.Fatal(err)
		}
		report("exit %d", ws.ExitStatus())
	case "int80":
		r := int80.Syscall(20, 0, 0, 0)
		report("survived, i386 getpid = %d", int(r))
	default:
		t.Fatalf("unknown case %q", name)
	}
}
