package sandbox

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// startTimeout bounds how long a sandbox may take to report that its tool
// started.
const startTimeout = 30 * time.Second

// limitPoll is how often a running sandbox's cgroup is checked for a pids
// limit hit, which the kernel answers with a failed fork, not a kill.
const limitPoll = 500 * time.Millisecond

// sandboxed is the gateway's side of one fully isolated child.
type sandboxed struct {
	spec    Spec
	logger  *slog.Logger
	config  []byte     // the init's config, written once the cgroup is set
	files   []*os.File // the child's ends, closed once it has started
	cfgW    *os.File
	control *os.File
	proxy   *egressProxy
	level   Isolation
	sources []string // the binds' host paths, in the config's order
	// hostListener is the egress proxy's listener when the sandbox has no
	// network namespace (landlock-only); otherwise the init passes one.
	hostListener net.Listener

	mu     sync.Mutex
	cgroup *cgroup
	born   bool   // the init was started inside its cgroup
	limit  string // the limit that killed the child, if one did
	stop   context.CancelFunc
	wg     sync.WaitGroup
	done   bool
}

// sandboxCommand builds a fully isolated child: mcpgate's own executable,
// started as the init of new namespaces, which sets up the sandbox and
// runs spec's program in it.
func sandboxCommand(spec Spec) (*Child, error) {
	cfg, err := plan(spec)
	if err != nil {
		return nil, err
	}
	root := os.Geteuid() == 0
	if spec.State != "" && root {
		if err := chownTree(spec.State, int(spec.HostUID())); err != nil {
			return nil, fmt.Errorf("build command: state %s: %w", spec.State, err)
		}
	}
	logger := spec.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &sandboxed{spec: spec, logger: logger}
	if cfg.Network {
		if s.proxy, err = newEgressProxy(spec.Allow, logger); err != nil {
			return nil, fmt.Errorf("build command: %w", err)
		}
		cfg.ProxyPort = proxyPort
		if cfg.Level == IsolationLandlockOnly {
			// No network namespace: the proxy listens on the host's
			// loopback, and Landlock lets the tool connect to its port
			// only.
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return nil, fmt.Errorf("build command: listen for the egress proxy: %w", err)
			}
			s.hostListener = ln
			cfg.ProxyPort = ln.Addr().(*net.TCPAddr).Port
		}
		proxy := "http://127.0.0.1:" + strconv.Itoa(cfg.ProxyPort)
		cfg.Env = append(cfg.Env, "HTTP_PROXY="+proxy, "HTTPS_PROXY="+proxy, "http_proxy="+proxy, "https_proxy="+proxy)
	}
	cmd, err := s.initCommand(cfg, root)
	if err != nil {
		if s.hostListener != nil {
			s.hostListener.Close()
		}
		return nil, err
	}
	return &Child{Cmd: cmd, sandbox: s}, nil
}

// checkSandboxed reports whether sandboxCommand(spec) would fail.
func checkSandboxed(spec Spec) error {
	_, err := plan(spec)
	return err
}

// plan checks spec against the host and works out the init's config. It
// changes nothing: the state directory's owner is fixed by the caller.
func plan(spec Spec) (initConfig, error) {
	caps := Probe()
	level := spec.Isolation
	if level == "" {
		level = IsolationFull
	}
	if err := caps.Offers(level); err != nil {
		return initConfig{}, fmt.Errorf("build command: %w: %s: %w", ErrIsolationUnavailable, level, err)
	}
	path, err := lookPath(spec.Argv)
	if err != nil {
		return initConfig{}, err
	}
	root := os.Geteuid() == 0
	cfg := initConfig{
		Level:    level,
		Argv:     spec.Argv,
		Env:      append([]string{}, spec.Env...),
		Dir:      spec.Dir,
		Landlock: caps.Landlock,
		NoFile:   spec.Limits.NoFile,
	}
	if cfg.NoFile == 0 {
		cfg.NoFile = DefaultLimits.NoFile
	}
	switch {
	case root && level == IsolationFull:
		cfg.UID, cfg.SetUID = ChildUID, true
	case root:
		// No uid mapping: the tool runs as its host uid itself.
		cfg.UID, cfg.SetUID = int(spec.HostUID()), true
	case level == IsolationFull:
		cfg.UID = 0 // the gateway's uid, mapped to 0 inside, with nothing
	default:
		cfg.UID = os.Geteuid()
	}
	if cfg.ParentNS, err = ownNamespaces(); err != nil {
		return initConfig{}, fmt.Errorf("build command: %w", err)
	}
	if cfg.Path, cfg.SelfExe, cfg.Binds, err = executableBind(path); err != nil {
		return initConfig{}, err
	}
	grants := func(paths []string, write, checkOwner bool, what string) error {
		for _, p := range paths {
			b, err := grant(p, write)
			if err != nil {
				return fmt.Errorf("build command: %s %s: %w", what, p, err)
			}
			if checkOwner && root {
				if err := checkWritable(b.Src, spec.HostUID()); err != nil {
					return fmt.Errorf("build command: %s %s: %w", what, p, err)
				}
			}
			cfg.Binds = append(cfg.Binds, b)
		}
		return nil
	}
	if err := grants(spec.Read, false, false, "read"); err != nil {
		return initConfig{}, err
	}
	if err := grants(spec.Write, true, true, "write"); err != nil {
		return initConfig{}, err
	}
	if spec.State != "" {
		// The gateway's own directory: handed to the sandbox's uid at
		// start, not checked.
		if err := grants([]string{spec.State}, true, false, "state"); err != nil {
			return initConfig{}, err
		}
	}
	if cfg.Dir == "" {
		cfg.Dir = "/"
	} else if !covered(cfg.Binds, cfg.Dir) {
		if err := grants([]string{cfg.Dir}, false, false, "dir"); err != nil {
			return initConfig{}, err
		}
	}
	if lim := effectiveLimits(spec.Limits); lim != (cgroupLimits{}) && caps.CgroupsErr != nil {
		return initConfig{}, fmt.Errorf("build command: resource limits need a writable cgroup tree (%v): run mcpgate as root or in a delegated cgroup, or set the sandbox's memory and pids to unlimited", caps.CgroupsErr)
	}
	if len(spec.Allow) > 0 {
		if _, err := newEgressProxy(spec.Allow, nil); err != nil {
			return initConfig{}, fmt.Errorf("build command: %w", err)
		}
		cfg.Network = true
	}
	if level == IsolationLandlockOnly && spec.State != "" {
		// The host's /tmp is shared: scratch space is the state directory.
		cfg.Env = append(cfg.Env, "TMPDIR="+spec.State)
	}
	return cfg, nil
}

// initCommand builds the command that starts the sandbox's init with cfg.
func (s *sandboxed) initCommand(cfg initConfig, root bool) (*exec.Cmd, error) {
	var err error
	if s.config, err = json.Marshal(cfg); err != nil {
		return nil, fmt.Errorf("build command: %w", err)
	}
	s.level = cfg.Level
	for _, b := range cfg.Binds {
		s.sources = append(s.sources, b.Src)
	}
	cfgR, cfgW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("build command: %w", err)
	}
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		cfgR.Close()
		cfgW.Close()
		return nil, fmt.Errorf("build command: %w", err)
	}
	s.cfgW = cfgW
	s.control = os.NewFile(uintptr(pair[0]), "sandbox control")
	s.files = []*os.File{cfgR, os.NewFile(uintptr(pair[1]), "sandbox control (child)")}

	cmd := exec.Command("/proc/self/exe")
	cmd.Args = []string{initArg0}
	cmd.Env = []string{}
	cmd.ExtraFiles = s.files // fds 3 (configFD) and 4 (controlFD)
	attr := &syscall.SysProcAttr{
		Setpgid: true,
		// WARNING: see plainCommand about Pdeathsig and OS threads.
		Pdeathsig: syscall.SIGKILL,
	}
	cmd.SysProcAttr = attr
	switch cfg.Level {
	case IsolationNoUserNS:
		attr.Cloneflags = syscall.CLONE_NEWPID | syscall.CLONE_NEWNS | syscall.CLONE_NEWNET |
			syscall.CLONE_NEWIPC | syscall.CLONE_NEWUTS | syscall.CLONE_NEWCGROUP
		return cmd, nil
	case IsolationLandlockOnly:
		return cmd, nil
	}
	attr.Cloneflags = syscall.CLONE_NEWUSER | syscall.CLONE_NEWPID | syscall.CLONE_NEWNS | syscall.CLONE_NEWNET |
		syscall.CLONE_NEWIPC | syscall.CLONE_NEWUTS | syscall.CLONE_NEWCGROUP
	// The init becomes the namespace's root before exec; without this a
	// root gateway's child keeps host uid 0, unmapped inside, and loses
	// every capability at exec.
	attr.Credential = &syscall.Credential{Uid: 0, Gid: 0}
	if root {
		// The sandbox's uids 0-65535 are a range of host uids no one else
		// uses: the tool (uid ChildUID inside) owns nothing on the host.
		base := s.spec.UIDBase
		if base == 0 {
			base = DefaultUIDBase
		}
		attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: int(base), Size: 65536}}
		attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: int(base), Size: 65536}}
		attr.GidMappingsEnableSetgroups = true
	} else {
		// Unprivileged, the only mapping possible is ourselves.
		attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Geteuid(), Size: 1}}
		attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getegid(), Size: 1}}
		attr.Credential.NoSetGroups = true
	}
	return cmd, nil
}

func (s *sandboxed) started(ctx context.Context, cmd *exec.Cmd) error {
	for _, f := range s.files {
		f.Close()
	}
	s.files = nil
	if s.level != IsolationLandlockOnly {
		if err := sendSources(s.control, cmd.Process.Pid, s.sources); err != nil {
			return fmt.Errorf("start sandbox: %w", err)
		}
	}
	// The init builds the sandbox while the cgroup is made and joined (a
	// few milliseconds each, done in parallel); it forks the tool only
	// after "go", once it is in the cgroup.
	_, err := s.cfgW.Write(s.config)
	s.cfgW.Close()
	if err != nil {
		return fmt.Errorf("start sandbox: send config: %w", err)
	}
	if err := s.joinCgroup(cmd.Process.Pid); err != nil {
		return fmt.Errorf("start sandbox: %w", err)
	}
	if err := unix.Sendmsg(int(s.control.Fd()), []byte(goMessage), nil, nil, 0); err != nil {
		return fmt.Errorf("start sandbox: release: %w", err)
	}
	status, listener, err := readStatus(ctx, s.control)
	if err != nil {
		return fmt.Errorf("start sandbox: %w", err)
	}
	if s.hostListener != nil && listener == nil {
		listener, s.hostListener = s.hostListener, nil
	}
	if status != "ok" {
		if listener != nil {
			listener.Close()
		}
		return fmt.Errorf("start sandbox: %s", strings.TrimPrefix(status, "error: "))
	}
	if (listener != nil) != (s.proxy != nil) {
		if listener != nil {
			listener.Close()
		}
		return errors.New("start sandbox: egress listener missing or unexpected")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		if listener != nil {
			listener.Close()
		}
		return errors.New("start sandbox: finished before it started")
	}
	runCtx, stop := context.WithCancel(context.Background())
	s.stop = stop
	if listener != nil {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := s.proxy.serve(runCtx, listener); err != nil {
				s.logger.Warn("egress proxy stopped", "error", err)
			}
		}()
	}
	if s.cgroup != nil {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.watchLimits(runCtx, cmd.Process)
		}()
	}
	return nil
}

// launch calls start, which starts the init, from a thread inside the
// sandbox's cgroup where the kernel allows it (v1): the init is born there
// instead of being moved in, which saves a global lock and an RCU grace
// period on every start. Elsewhere, or if the thread cannot move, started
// moves the init in instead.
func (s *sandboxed) launch(start func() error) error {
	cg, err := s.makeCgroup()
	if err != nil {
		return fmt.Errorf("start sandbox: %w", err)
	}
	if cg == nil || cg.version != 1 {
		return start()
	}
	// WARNING: while it is in the sandbox's cgroup this thread must run
	// nothing but the start: it stays locked until it is back out.
	runtime.LockOSThread()
	if err := cg.enterThread(); err != nil {
		runtime.UnlockOSThread()
		return start()
	}
	startErr := start()
	if err := cg.leaveThread(); err != nil {
		// The thread stays locked, so no other goroutine ever runs (and
		// is charged) in the sandbox's cgroup; it ends with its goroutine.
		s.logger.Error("gateway thread left in a sandbox's cgroup", "sandbox", s.spec.Name, "error", err)
		return errors.Join(startErr, fmt.Errorf("start sandbox: %w", err))
	}
	runtime.UnlockOSThread()
	if startErr == nil {
		s.born = true
	}
	return startErr
}

// joinCgroup puts the started init into the sandbox's cgroup, unless it
// was born there.
func (s *sandboxed) joinCgroup(pid int) error {
	if s.born {
		return nil
	}
	cg, err := s.makeCgroup()
	if err != nil || cg == nil {
		return err
	}
	return cg.add(pid)
}

// makeCgroup creates the sandbox's cgroup once; nil without limits.
func (s *sandboxed) makeCgroup() (*cgroup, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cgroup != nil {
		return s.cgroup, nil
	}
	cl := effectiveLimits(s.spec.Limits)
	if cl == (cgroupLimits{}) {
		return nil, nil
	}
	cg, err := newCgroup(cgroupName(s.spec.Name), cl)
	if err != nil {
		return nil, fmt.Errorf("%w (limits need a writable cgroup tree; memory and pids set to unlimited run without one)", err)
	}
	s.cgroup = cg
	return cg, nil
}

// effectiveLimits applies the defaults to l and drops what is unlimited.
func effectiveLimits(l Limits) cgroupLimits {
	if l.MemoryBytes == 0 {
		l.MemoryBytes = DefaultLimits.MemoryBytes
	}
	if l.Pids == 0 {
		l.Pids = DefaultLimits.Pids
	}
	return cgroupLimits{MemoryBytes: max(l.MemoryBytes, 0), Pids: max(l.Pids, 0), CPU: max(l.CPU, 0)}
}

// cgroupName makes a cgroup name (newCgroup adds "mcpgate-") from the
// child's name and a random suffix.
func cgroupName(name string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		if b.Len() >= 40 {
			break
		}
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	b.WriteString("-" + strings.ToLower(rand.Text()[:10]))
	return b.String()
}

// watchLimits kills the sandbox when its pids limit refuses a fork: a tool
// that hit it is in an unknown state (a fork bomb, or helpers it needed
// failed to start), and the supervisor restarts it cleanly.
func (s *sandboxed) watchLimits(ctx context.Context, init *os.Process) {
	t := time.NewTicker(limitPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		ev, err := s.cgroup.events()
		if err != nil || ev.PidsRefused == 0 {
			continue
		}
		s.mu.Lock()
		s.limit = "pids"
		s.mu.Unlock()
		s.logger.Warn("sandbox killed: pids limit reached", "sandbox", s.spec.Name, "forks_refused", ev.PidsRefused)
		_ = init.Kill()
		return
	}
}

func (s *sandboxed) finish() Exit {
	s.mu.Lock()
	if s.done {
		defer s.mu.Unlock()
		return Exit{Limit: s.limit}
	}
	s.done = true
	stop := s.stop
	s.mu.Unlock()
	if stop != nil {
		stop()
	}
	s.wg.Wait()
	for _, f := range s.files {
		f.Close()
	}
	if s.hostListener != nil {
		s.hostListener.Close()
	}
	s.cfgW.Close()
	s.control.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cgroup != nil {
		if ev, err := s.cgroup.events(); err == nil && ev.OOMKills > 0 && s.limit == "" {
			s.limit = "memory"
			s.logger.Warn("sandbox killed: memory limit reached", "sandbox", s.spec.Name, "oom_kills", ev.OOMKills)
		}
		if err := s.cgroup.remove(); err != nil {
			s.logger.Warn("sandbox cgroup not removed", "sandbox", s.spec.Name, "error", err)
		}
	}
	return Exit{Limit: s.limit}
}

// readStatus reads the init's status message and the descriptor it may
// carry, within ctx and startTimeout.
func readStatus(ctx context.Context, control *os.File) (string, net.Listener, error) {
	deadline := time.Now().Add(startTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	// A blocking recvmsg with a receive timeout: the control descriptor
	// must stay usable by the init's EOF watch afterwards, so it is not
	// handed to the runtime poller.
	fd := int(control.Fd())
	stopWatch := context.AfterFunc(ctx, func() { _ = unix.Shutdown(fd, unix.SHUT_RD) })
	defer stopWatch()
	tv := unix.NsecToTimeval(time.Until(deadline).Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return "", nil, fmt.Errorf("read status: %w", err)
	}
	buf := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(4))
	n, oobn, _, _, err := unix.Recvmsg(fd, buf, oob, unix.MSG_CMSG_CLOEXEC)
	if errors.Is(err, unix.ECONNRESET) {
		// The init exited (after a probe, or after reporting a failure)
		// without reading what we sent it ("go"): the kernel then flags our
		// socket with ECONNRESET, and reports that before the status
		// message already queued. Reading the error clears it; the status
		// is next.
		n, oobn, _, _, err = unix.Recvmsg(fd, buf, oob, unix.MSG_CMSG_CLOEXEC)
	}
	if err != nil {
		if ctx.Err() != nil {
			return "", nil, ctx.Err()
		}
		return "", nil, fmt.Errorf("read status: %w", err)
	}
	if n == 0 {
		return "", nil, errors.New("read status: the sandbox exited before reporting (see its stderr)")
	}
	var listener net.Listener
	if oobn > 0 {
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil || len(msgs) != 1 {
			return "", nil, errors.New("read status: malformed control message")
		}
		fds, err := unix.ParseUnixRights(&msgs[0])
		if err != nil || len(fds) != 1 {
			for _, fd := range fds {
				unix.Close(fd)
			}
			return "", nil, errors.New("read status: malformed descriptor message")
		}
		f := os.NewFile(uintptr(fds[0]), "egress listener")
		listener, err = net.FileListener(f)
		f.Close()
		if err != nil {
			return "", nil, fmt.Errorf("read status: egress listener: %w", err)
		}
	}
	return string(buf[:n]), listener, nil
}

// sendSources opens every bind's source for the init, through the init's
// own root (/proc/PID/root: the descriptors then belong to its mount
// namespace, as a bind requires), with the gateway's right to traverse the
// host's directories, which the sandbox's uid may lack; symlinks are
// refused (the sources are resolved already).
func sendSources(control *os.File, pid int, sources []string) error {
	if len(sources) > 200 {
		return fmt.Errorf("send bind sources: %d binds, at most 200", len(sources))
	}
	root, err := unix.Open("/proc/"+strconv.Itoa(pid)+"/root", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("send bind sources: %w", err)
	}
	defer unix.Close(root)
	fds := make([]int, 0, len(sources))
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	for _, src := range sources {
		fd, err := unix.Openat2(root, strings.TrimPrefix(src, "/"), &unix.OpenHow{
			Flags:   unix.O_PATH | unix.O_CLOEXEC,
			Resolve: unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_BENEATH,
		})
		if err != nil {
			return fmt.Errorf("send bind sources: open %s: %w", src, err)
		}
		fds = append(fds, fd)
	}
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	if err := unix.Sendmsg(int(control.Fd()), []byte(sourcesMessage), oob, nil, 0); err != nil {
		return fmt.Errorf("send bind sources: %w", err)
	}
	return nil
}

// ownNamespaces reads the gateway's namespace identities, which the init
// must not share.
func ownNamespaces() (map[string]uint64, error) {
	ns := make(map[string]uint64, len(namespaces))
	for _, kind := range namespaces {
		ino, err := nsInode("self", kind)
		if err != nil {
			return nil, err
		}
		ns[kind] = ino
	}
	return ns, nil
}

// executableBind makes the program visible inside: system directories
// already are; mcpgate's own executable is run through a descriptor the
// init holds (self); any other file is bound read-only at its resolved
// path.
func executableBind(path string) (inside string, self bool, binds []bindMount, err error) {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return "", false, nil, fmt.Errorf("build command: %w", err)
	}
	real, err = filepath.Abs(real)
	if err != nil {
		return "", false, nil, fmt.Errorf("build command: %w", err)
	}
	for _, d := range systemDirs {
		if strings.HasPrefix(real, d+"/") {
			return path, false, nil, nil
		}
	}
	if exe, err := os.Executable(); err == nil {
		if exeReal, err := filepath.EvalSymlinks(exe); err == nil && exeReal == real {
			return real, true, nil, nil
		}
	}
	return real, false, []bindMount{{Src: real, Dst: real}}, nil
}

// grant resolves a configured path: it must exist and be absolute; it
// appears inside at the path as written, bound from its resolved host path.
func grant(p string, write bool) (bindMount, error) {
	if !filepath.IsAbs(p) {
		return bindMount{}, errors.New("not an absolute path")
	}
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return bindMount{}, err
	}
	return bindMount{Src: real, Dst: filepath.Clean(p), Write: write}, nil
}

// checkWritable refuses a write grant the sandbox's uid could not write:
// the tool would fail later, less clearly.
func checkWritable(path string, uid uint32) error {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return err
	}
	if st.Uid == uid || st.Mode&0o002 != 0 {
		return nil
	}
	return fmt.Errorf("owned by uid %d, but the sandbox writes as uid %d (chown -R %d %s)", st.Uid, uid, uid, path)
}

// chownTree gives dir and what is in it to uid, without following links.
func chownTree(dir string, uid int) error {
	return filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		if int(st.Uid) == uid && int(st.Gid) == uid {
			return nil
		}
		return unix.Lchown(p, uid, uid)
	})
}

// covered reports whether path is at or below a bind.
func covered(binds []bindMount, path string) bool {
	for _, b := range binds {
		if path == b.Dst || strings.HasPrefix(path, b.Dst+"/") {
			return true
		}
	}
	for _, d := range systemDirs {
		if path == d || strings.HasPrefix(path, d+"/") {
			return true
		}
	}
	return false
}
