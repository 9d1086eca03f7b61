package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// initArg0 is the argv[0] that turns mcpgate (or a test binary) into a
// sandbox's init.
const initArg0 = "mcpgate-sandbox-init"

// The init's inherited descriptors, besides the standard streams: the
// config pipe (read to EOF) and the control socket (a status message to the
// gateway, then held open: its EOF means the gateway is gone).
const (
	configFD  = 3
	controlFD = 4
)

// sourcesMessage carries the descriptors of the binds' sources.
const sourcesMessage = "sources"

// goMessage is the gateway's word on the control socket that the init is
// in its cgroup and may start the tool.
const goMessage = "go"

// proxyPort is where the egress proxy listens inside the sandbox.
const proxyPort = 3128

// initFailed is the init's exit status when it could not start the tool.
const initFailed = 125

// initConfig is what the gateway tells a sandbox's init.
type initConfig struct {
	Probe   bool        `json:"probe,omitempty"`
	Level   Isolation   `json:"level"`
	Argv    []string    `json:"argv"`
	Path    string      `json:"path"`               // the executable, inside the sandbox
	SelfExe bool        `json:"self_exe,omitempty"` // the program is mcpgate's own executable
	Env     []string    `json:"env"`
	Dir     string      `json:"dir"`
	Binds   []bindMount `json:"binds"`
	Network bool        `json:"network"`
	UID     int         `json:"uid"`     // the tool's uid and gid inside
	SetUID  bool        `json:"set_uid"` // whether to change to UID (else the init's is kept)
	// ProxyPort is the egress proxy's port the tool may connect to (the
	// sandbox's own loopback, or the host's for landlock-only).
	ProxyPort int               `json:"proxy_port,omitempty"`
	NoFile    uint64            `json:"nofile"`
	Landlock  int               `json:"landlock"` // the probed ABI
	ParentNS  map[string]uint64 `json:"parent_ns"`
}

// bindMount is one host path made visible inside the sandbox.
type bindMount struct {
	Src   string `json:"src,omitempty"` // host path, symlinks resolved
	Dst   string `json:"dst"`
	Write bool   `json:"write,omitempty"`
	// fd is the descriptor the gateway opened Src as (see sourceFDs); the
	// bind is made from it, not from Src.
	fd int
}

// namespaces are the ones a sandbox must not share with the gateway.
var namespaces = []string{"user", "mnt", "pid", "net", "ipc", "uts", "cgroup"}

// IsInit reports whether this process was started as a sandbox's init. A
// program that starts sandboxes (mcpgate, and test binaries) must then call
// RunInit first thing in main (or TestMain).
func IsInit() bool { return len(os.Args) > 0 && os.Args[0] == initArg0 }

// RunInit is the sandbox's init. It never returns: it exits with the tool's
// status (128+signal if the tool was killed), or initFailed.
func RunInit() {
	// Never unlocked: the credentials, Landlock domain and seccomp filter
	// set below are this thread's alone, and the tool is forked from it.
	runtime.LockOSThread()
	control := os.NewFile(controlFD, "control")
	code, err := runInit(control)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mcpgate sandbox:", err)
		_ = sendStatus(control, "error: "+err.Error(), -1)
		exit(initFailed)
	}
	exit(code)
}

// exit ends the init at once: there is nothing to flush, and a race-enabled
// build (the test binaries) would otherwise pause a second in os.Exit.
func exit(code int) {
	unix.Exit(code)
}

func runInit(control *os.File) (int, error) {
	cfg, err := readConfig()
	if err != nil {
		return 0, err
	}
	landlockOnly := cfg.Level == IsolationLandlockOnly
	if !landlockOnly {
		// Everything below changes mounts, the host name and the network:
		// on the host's namespaces that would change the host itself.
		if err := assertNewNamespaces(cfg.ParentNS, cfg.Level != IsolationNoUserNS); err != nil {
			return 0, err
		}
	}
	if cfg.Probe {
		return 0, probeInside(control)
	}
	if !landlockOnly {
		if err := receiveSources(control, cfg.Binds); err != nil {
			return 0, err
		}
	}
	self := -1
	if cfg.SelfExe {
		// mcpgate's own executable (built-in servers, and test binaries)
		// may sit in a directory the sandbox's uid cannot traverse (go
		// test's 0700 build dirs), and a bind of it would come from the
		// gateway's mount namespace, which the kernel refuses. The tool is
		// executed through this descriptor instead, and Landlock grants
		// exactly this file.
		if self, err = unix.Open("/proc/self/exe", unix.O_PATH|unix.O_CLOEXEC, 0); err != nil {
			return 0, fmt.Errorf("open own executable: %w", err)
		}
		cfg.Path = "/proc/self/fd/" + strconv.Itoa(self)
	}
	listener := -1
	if landlockOnly {
		// No pid namespace: orphans of the tool come to the init rather
		// than the host's init (the cgroup kills what outlives it).
		if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
			return 0, fmt.Errorf("become subreaper: %w", err)
		}
	} else {
		if err := buildRoot(cfg); err != nil {
			return 0, err
		}
		if err := unix.Sethostname([]byte("mcpgate-sandbox")); err != nil {
			return 0, fmt.Errorf("set host name: %w", err)
		}
		if err := loopbackUp(); err != nil {
			return 0, err
		}
		if cfg.Network {
			if listener, err = proxyListener(); err != nil {
				return 0, err
			}
		}
	}
	if err := setRlimits(cfg.NoFile); err != nil {
		return 0, err
	}
	var port uint16
	if cfg.Network {
		port = uint16(cfg.ProxyPort)
	}
	ruleset, err := newLandlockRuleset(cfg.Landlock, sandboxRules(cfg), self, port)
	if err != nil {
		return 0, err
	}
	filter, err := seccompProgram()
	if err != nil {
		return 0, err
	}
	// A landlock-only init started by an unprivileged gateway has no
	// capability to drop.
	privileged := !landlockOnly || cfg.SetUID
	if err := dropPrivileges(cfg.UID, cfg.SetUID, privileged); err != nil {
		return 0, err
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return 0, fmt.Errorf("set no_new_privs: %w", err)
	}
	if err := restrictSelf(ruleset); err != nil {
		return 0, err
	}
	if err := installSeccomp(filter); err != nil {
		return 0, err
	}
	// Nothing of ours but the standard streams may reach the tool.
	if err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		return 0, fmt.Errorf("mark descriptors close-on-exec: %w", err)
	}
	if err := awaitGo(control); err != nil {
		return 0, err
	}
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, unix.SIGTERM, unix.SIGINT, unix.SIGHUP, unix.SIGQUIT, unix.SIGUSR1, unix.SIGUSR2)
	pid, err := syscall.ForkExec(cfg.Path, cfg.Argv, &syscall.ProcAttr{
		Dir:   cfg.Dir,
		Env:   cfg.Env,
		Files: []uintptr{0, 1, 2},
		// Without a pid namespace nothing kills the tool when the init
		// dies; with one this is redundant.
		Sys: &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL},
	})
	if err != nil {
		return 0, fmt.Errorf("start %s: %w", cfg.Argv[0], err)
	}
	if err := sendStatus(control, "ok", listener); err != nil {
		return 0, err
	}
	if listener >= 0 {
		unix.Close(listener)
	}
	go forwardSignals(signals, pid)
	go exitWithGateway(control)
	return reap(pid), nil
}

// receiveSources takes the descriptors the gateway opened for the binds'
// sources, one per bind, in order.
func receiveSources(control *os.File, binds []bindMount) error {
	oob := make([]byte, unix.CmsgSpace(4*max(len(binds), 1)))
	buf := make([]byte, 16)
	n, oobn, _, _, err := unix.Recvmsg(int(control.Fd()), buf, oob, unix.MSG_CMSG_CLOEXEC)
	if err != nil {
		return fmt.Errorf("receive bind sources: %w", err)
	}
	if string(buf[:n]) != sourcesMessage {
		return errors.New("receive bind sources: unexpected message")
	}
	var fds []int
	if oobn > 0 {
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil || len(msgs) != 1 {
			return errors.New("receive bind sources: malformed control message")
		}
		if fds, err = unix.ParseUnixRights(&msgs[0]); err != nil {
			return fmt.Errorf("receive bind sources: %w", err)
		}
	}
	if len(fds) != len(binds) {
		return fmt.Errorf("receive bind sources: %d descriptors for %d binds", len(fds), len(binds))
	}
	for i := range binds {
		binds[i].fd = fds[i]
	}
	return nil
}

func readConfig() (*initConfig, error) {
	f := os.NewFile(configFD, "config")
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	var cfg initConfig
	if err := json.Unmarshal(data, &cfg); err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	if !cfg.Probe && (len(cfg.Argv) == 0 || cfg.Path == "") {
		return nil, errors.New("read config: no program")
	}
	return &cfg, nil
}

// nsInode identifies the namespace of kind the calling process is in.
func nsInode(pid, kind string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/"+pid+"/ns/"+kind, &st); err != nil {
		return 0, fmt.Errorf("inspect %s namespace: %w", kind, err)
	}
	return st.Ino, nil
}

// assertNewNamespaces refuses to go on unless this process is in a new
// namespace of every kind (but the user namespace, unless user): the guard
// that keeps a bug (or a missing clone flag) from remounting or renaming
// the host.
func assertNewNamespaces(parent map[string]uint64, user bool) error {
	for _, kind := range namespaces {
		if kind == "user" && !user {
			continue
		}
		ino, err := nsInode("self", kind)
		if err != nil {
			return err
		}
		if p, ok := parent[kind]; !ok || p == ino {
			return fmt.Errorf("refusing to set up the sandbox: not in a new %s namespace (would modify the host)", kind)
		}
	}
	return nil
}

// probeInside checks that the privileged steps of a real start work here:
// private mounts, a tmpfs and a fresh /proc.
func probeInside(control *os.File) error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	if err := unix.Mount("tmpfs", "/tmp", "tmpfs", 0, "size=64k"); err != nil {
		return fmt.Errorf("mount tmpfs: %w", err)
	}
	if err := os.Mkdir("/tmp/proc", 0o755); err != nil {
		return fmt.Errorf("create /proc: %w", err)
	}
	if err := unix.Mount("proc", "/tmp/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mount /proc: %w", err)
	}
	return sendStatus(control, "ok", -1)
}

// loopbackUp brings up the sandbox's own loopback interface (a new network
// namespace starts with it down).
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("bring up loopback: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return fmt.Errorf("bring up loopback: %w", err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bring up loopback: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bring up loopback: %w", err)
	}
	return nil
}

// proxyListener listens on the sandbox's loopback for the egress proxy.
// The socket stays bound to this network namespace wherever its descriptor
// goes: the gateway accepts on it from outside, so no helper runs inside
// and the tool cannot take the port.
func proxyListener() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(proxyPort))
	if err != nil {
		return -1, fmt.Errorf("listen for the egress proxy: %w", err)
	}
	defer ln.Close()
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		return -1, fmt.Errorf("listen for the egress proxy: %w", err)
	}
	// f's descriptor is a close-on-exec duplicate; keep it past f.
	fd, err := unix.Dup(int(f.Fd()))
	f.Close()
	if err != nil {
		return -1, fmt.Errorf("listen for the egress proxy: %w", err)
	}
	unix.CloseOnExec(fd)
	return fd, nil
}

func setRlimits(nofile uint64) error {
	if nofile > 0 {
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: nofile, Max: nofile}); err != nil {
			return fmt.Errorf("limit open files: %w", err)
		}
	}
	// No core dumps: they would write the tool's memory (secrets included)
	// where the sandbox may write.
	if err := unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{}); err != nil {
		return fmt.Errorf("disable core dumps: %w", err)
	}
	return nil
}

// Secure bits (linux/securebits.h): root gains no capabilities by exec,
// capabilities cannot be kept across a uid change nor made ambient, all
// locked.
const (
	secbitNoRoot               = 1 << 0
	secbitNoRootLocked         = 1 << 1
	secbitKeepCapsLocked       = 1 << 5
	secbitNoCapAmbientRaise    = 1 << 6
	secbitNoCapAmbientRaiseLkd = 1 << 7
)

// dropPrivileges leaves the calling thread (the tool's future parent) with
// no capability in any set and, if setUID, the uid and gid uid with no
// supplementary group. Without setUID the thread keeps its uid: 0 inside a
// user namespace that maps only an unprivileged gateway's uid, or that
// gateway's own uid (landlock-only). privileged says the thread holds
// capabilities to drop (the bounding set and secure bits need them; an
// unprivileged thread has none, and no_new_privs keeps it so).
//
// WARNING: this drops privileges of the calling OS thread only, through raw
// syscalls (Go's wrappers apply them to every thread). The caller must
// hold the thread locked and fork the tool from it.
func dropPrivileges(uid int, setUID, privileged bool) error {
	if privileged {
		last, err := lastCap()
		if err != nil {
			return err
		}
		for c := 0; c <= last; c++ {
			if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil {
				return fmt.Errorf("drop capability %d from the bounding set: %w", c, err)
			}
		}
		bits := uintptr(secbitNoRoot | secbitNoRootLocked | secbitKeepCapsLocked | secbitNoCapAmbientRaise | secbitNoCapAmbientRaiseLkd)
		if err := unix.Prctl(unix.PR_SET_SECUREBITS, bits, 0, 0, 0); err != nil {
			return fmt.Errorf("set secure bits: %w", err)
		}
	}
	if setUID {
		if _, _, errno := unix.RawSyscall(unix.SYS_SETGROUPS, 0, 0, 0); errno != 0 {
			return fmt.Errorf("clear groups: %w", errno)
		}
		if _, _, errno := unix.RawSyscall(unix.SYS_SETRESGID, uintptr(uid), uintptr(uid), uintptr(uid)); errno != 0 {
			return fmt.Errorf("set gid: %w", errno)
		}
		if _, _, errno := unix.RawSyscall(unix.SYS_SETRESUID, uintptr(uid), uintptr(uid), uintptr(uid)); errno != 0 {
			return fmt.Errorf("set uid: %w", errno)
		}
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("clear capabilities: %w", err)
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil {
		return fmt.Errorf("clear ambient capabilities: %w", err)
	}
	// A uid change clears the parent-death signal; the gateway's death
	// must still kill the sandbox.
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0); err != nil {
		return fmt.Errorf("set parent-death signal: %w", err)
	}
	return verifyDropped(uid, privileged)
}

func lastCap() (int, error) {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return 0, fmt.Errorf("read cap_last_cap: %w", err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("read cap_last_cap: %w", err)
	}
	return n, nil
}

// verifyDropped checks the thread's credentials as the kernel reports them:
// a silent failure to drop must stop the start, not run the tool.
func verifyDropped(uid int, privileged bool) error {
	b, err := os.ReadFile("/proc/thread-self/status")
	if err != nil {
		return fmt.Errorf("verify privileges: %w", err)
	}
	want := map[string]string{
		"CapInh": "0000000000000000", "CapPrm": "0000000000000000", "CapEff": "0000000000000000",
		"CapBnd": "0000000000000000", "CapAmb": "0000000000000000",
	}
	if !privileged {
		// An unprivileged thread cannot empty its bounding set; it holds
		// nothing, and no_new_privs keeps exec from granting anything.
		delete(want, "CapBnd")
	}
	id := strconv.Itoa(uid)
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch k {
		case "Uid", "Gid":
			for _, f := range strings.Fields(v) {
				if f != id {
					return fmt.Errorf("verify privileges: %s is %q, want %s", k, v, id)
				}
			}
		default:
			if w, ok := want[k]; ok && v != w {
				return fmt.Errorf("verify privileges: %s is %s", k, v)
			}
			delete(want, k)
		}
	}
	if len(want) != 0 {
		return errors.New("verify privileges: capability sets missing from status")
	}
	return nil
}

// sendStatus tells the gateway how the start went, passing fd (the egress
// proxy's listener) along if it is not negative.
func sendStatus(control *os.File, msg string, fd int) error {
	var oob []byte
	if fd >= 0 {
		oob = unix.UnixRights(fd)
	}
	if err := unix.Sendmsg(int(control.Fd()), []byte(msg), oob, nil, 0); err != nil {
		return fmt.Errorf("report to the gateway: %w", err)
	}
	return nil
}

// awaitGo blocks until the gateway has put the init in its cgroup: nothing
// the tool does may escape the limits.
func awaitGo(control *os.File) error {
	buf := make([]byte, 16)
	n, _, _, _, err := unix.Recvmsg(int(control.Fd()), buf, nil, 0)
	if err != nil {
		return fmt.Errorf("wait for the gateway: %w", err)
	}
	if string(buf[:n]) != goMessage {
		return errors.New("wait for the gateway: it went away")
	}
	return nil
}

func forwardSignals(signals <-chan os.Signal, pid int) {
	for s := range signals {
		_ = unix.Kill(pid, s.(syscall.Signal))
	}
}

// exitWithGateway ends the sandbox when the gateway's end of the control
// socket closes: the gateway died (its parent-death signal covers most of
// that, this covers the rest). pid 1's exit kills every process inside.
func exitWithGateway(control *os.File) {
	buf := make([]byte, 1)
	for {
		if _, err := control.Read(buf); err != nil {
			exit(initFailed)
		}
	}
}

// reap waits for the tool, reaping every orphan that pid 1 inherits on the
// way, and returns the tool's exit status as a shell would.
func reap(tool int) int {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, 0, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return initFailed
		}
		if pid != tool {
			continue
		}
		if ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ws.ExitStatus()
	}
}
