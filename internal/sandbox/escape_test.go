//go:build linux

package sandbox

// The escape suite: real programs run inside the sandbox and try to get out.
// The probe program is this test binary itself (TestEscapeProbe, selected by
// an environment variable), which the sandbox binds in automatically. It
// prints one "escape: <check>: <result>" line per check; the tests assert on
// those lines. Every refusal is paired with a control that shows the same
// probe does report success where success is possible (a granted path, the
// host, an unsandboxed child), so that a broken probe cannot pass.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/mcpgate/mcpgate/internal/sandbox/internal/int80"
)

const (
	// escapeProbeEnv selects the probe TestEscapeProbe runs.
	escapeProbeEnv = "MCPGATE_ESCAPE_PROBE"
	// escapeGatewayEnv makes TestEscapeFakeGateway a gateway holding a
	// sandbox; its value is the marker the sandbox's processes carry.
	escapeGatewayEnv = "MCPGATE_ESCAPE_FAKE_GATEWAY"
	escapeMarkerVar  = "MCPGATE_ESCAPE_MARKER"
	escapeSecretVar  = "MCPGATE_ESCAPE_SECRET"
	escapePrefix     = "escape: "
	sandboxHostname  = "mcpgate-sandbox"
)

// escapeUIDBase is this test process's own sandbox uid range, away from
// DefaultUIDBase, so that the host-wide scans for sandbox uids below are not
// confused by sandboxes other test processes run meanwhile.
var escapeUIDBase = uint32(2<<20) + uint32(os.Getpid()%4096)<<16

// ---------------------------------------------------------------------------
// Gateway side.

func needFull(t *testing.T) {
	t.Helper()
	if err := Probe().FullIsolation(); err != nil {
		t.Skipf("no full isolation on this host: %v", err)
	}
}

func needRoot(t *testing.T, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("needs root: %s", why)
	}
}

func testExe(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

// probeSpec runs probe mode in this test binary (or in exe, if given).
func probeSpec(t *testing.T, mode string, env ...string) Spec {
	return Spec{
		Name: "escape-" + mode,
		Argv: []string{testExe(t), "-test.run=^TestEscapeProbe$", "-test.count=1", "-test.timeout=60s"},
		// The race runtime sleeps a second at exit unless told not to.
		Env:     append([]string{escapeProbeEnv + "=" + mode, "GORACE=atexit_sleep_ms=0", "PATH=/usr/bin:/bin"}, env...),
		UIDBase: escapeUIDBase,
	}
}

// probeRun is one finished child.
type probeRun struct {
	stdout, stderr string
	waitErr        error
	code           int // the init's exit status; -1 if it died by a signal
	exit           Exit
	elapsed        time.Duration
	lines          map[string]string
}

// run starts spec, waits at most timeout for it to end (then kills it), and
// collects what it printed.
func run(t *testing.T, spec Spec, timeout time.Duration) probeRun {
	t.Helper()
	c, err := Command(spec)
	if err != nil {
		t.Fatalf("command: %v", err)
	}
	var stdout, stderr bytes.Buffer
	c.Cmd.Stdout = &stdout
	c.Cmd.Stderr = &stderr
	c.Cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	if err := c.Cmd.Start(); err != nil {
		t.Fatalf("start: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := c.Started(ctx); err != nil {
		_ = c.Cmd.Process.Kill()
		_ = c.Cmd.Wait()
		c.Finish()
		t.Fatalf("started: %v\nstderr: %s", err, stderr.String())
	}
	stopKill := context.AfterFunc(ctx, func() { _ = c.Cmd.Process.Kill() })
	waitErr := c.Cmd.Wait()
	stopKill()
	r := probeRun{waitErr: waitErr, exit: c.Finish(), elapsed: time.Since(start)}
	if ctx.Err() != nil {
		t.Errorf("child still running after %v: killed", timeout)
	}
	r.stdout, r.stderr = stdout.String(), stderr.String()
	r.code = c.Cmd.ProcessState.ExitCode()
	r.lines = parseProbe(r.stdout)
	t.Cleanup(func() {
		if testing.Verbose() && !t.Failed() {
			t.Logf("child %s: exit %d, %+v, %v\n%s", spec.Name, r.code, r.exit, r.elapsed, r.stdout)
		}
		if t.Failed() {
			t.Logf("child %s: %v (exit %d, %v, %v)\nstdout:\n%s\nstderr:\n%s", spec.Name, waitErr, r.code, r.exit, r.elapsed, r.stdout, r.stderr)
		}
	})
	return r
}

func parseProbe(out string) map[string]string {
	lines := map[string]string{}
	for l := range strings.SplitSeq(out, "\n") {
		rest, ok := strings.CutPrefix(l, escapePrefix)
		if !ok {
			continue
		}
		k, v, _ := strings.Cut(rest, ": ")
		lines[k] = v
	}
	return lines
}

// expect checks one probe line, as a subtest named after it.
func (r probeRun) expect(t *testing.T, check string, want ...string) {
	t.Helper()
	t.Run(check, func(t *testing.T) {
		t.Helper()
		got, ok := r.lines[check]
		if !ok {
			t.Fatalf("no result line for %s", check)
		}
		if !slices.Contains(want, got) {
			t.Fatalf("%s: got %q, want %q", check, got, want)
		}
	})
}

// expectReached checks that a call got past any filter: it succeeded or
// failed with an errno other than the filter's EPERM and ENOSYS.
func (r probeRun) expectReached(t *testing.T, check string) {
	t.Helper()
	t.Run(check, func(t *testing.T) {
		t.Helper()
		got, ok := r.lines[check]
		if !ok || got == "refused (EPERM)" || got == "refused (ENOSYS)" {
			t.Fatalf("%s: got %q, want the kernel's own answer", check, got)
		}
	})
}

func (r probeRun) expectPrefix(t *testing.T, check, prefix string) {
	t.Helper()
	t.Run(check, func(t *testing.T) {
		t.Helper()
		if got := r.lines[check]; !strings.HasPrefix(got, prefix) {
			t.Fatalf("%s: got %q, want %q...", check, got, prefix)
		}
	})
}

func randomHex(t *testing.T) string {
	t.Helper()
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// traversableDir makes a fresh 0755 directory the sandbox's uids can reach
// (t.TempDir() sits under a 0700 parent).
func traversableDir(t *testing.T, pattern string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", pattern)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func writeFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // past the umask
		t.Fatal(err)
	}
}

// ---------------------------------------------------------------------------
// 1. Secrets.

func TestEscapeSecrets(t *testing.T) {
	needFull(t)
	canary := "mcpgate-escape-canary-" + randomHex(t)

	// A host file outside every grant, readable by anyone on the host.
	secretDir := traversableDir(t, "escape-secret-")
	canaryFile := filepath.Join(secretDir, "canary")
	writeFile(t, canaryFile, canary, 0o644)
	// A granted directory: the control for reading files.
	readDir := traversableDir(t, "escape-read-")
	writeFile(t, filepath.Join(readDir, "granted"), "granted-content", 0o644)

	// The gateway's environment carries the secret (were it handed down,
	// the probe would find it in its own or the init's environ), and so
	// does a host process, whose environ and cmdline the probe must not
	// see: the host-side scan finding it is the control.
	t.Setenv(escapeSecretVar, canary)
	holder := exec.Command("/bin/sh", "-c", "sleep 60; : "+canary)
	holder.Env = []string{escapeSecretVar + "=" + canary}
	holder.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-holder.Process.Pid, syscall.SIGKILL)
		_ = holder.Wait()
	})
	found, _, _ := scanProc([]byte(canary))
	if !slices.Contains(found, holder.Process.Pid) {
		t.Fatalf("control: the host scan does not find the canary in the holder process %d (found %v)", holder.Process.Pid, found)
	}

	spec := probeSpec(t, "secrets",
		"ESCAPE_NEEDLE_HEX="+hex.EncodeToString([]byte(canary)),
		"ESCAPE_CANARY="+canaryFile,
		"ESCAPE_GRANTED="+filepath.Join(readDir, "granted"))
	spec.Read = []string{readDir}
	r := run(t, spec, 30*time.Second)
	if r.code != 0 {
		t.Fatalf("probe exit %d (%v)", r.code, r.waitErr)
	}
	r.expect(t, "etc-passwd", "ALLOWED") // control: a visible /etc file
	r.expect(t, "etc-shadow", "refused (ENOENT)", "refused (EACCES)")
	r.expect(t, "granted-file", "ALLOWED") // control: a read grant
	r.expect(t, "canary-file", "refused (ENOENT)", "refused (EACCES)")
	r.expect(t, "proc1-root-passwd", "refused (EACCES)", "refused (ENOENT)")
	r.expect(t, "scan-self", "found") // control: the scan sees the probe's own environ
	r.expectPrefix(t, "scan-canary", "not found")
	r.expect(t, "pid1", initArg0)
	t.Run("pids", func(t *testing.T) {
		want := "1," + r.lines["self"]
		if got := r.lines["pids"]; got != want || r.lines["self"] == "" {
			t.Fatalf("processes visible inside: %q, want only the init and the probe (%q)", got, want)
		}
	})
}

// scanProc lists the processes whose environ or cmdline contain needle,
// and how many processes there are and how many of their environs could be
// read.
func scanProc(needle []byte) (found []int, procs, readable int) {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		procs++
		hit := false
		for _, f := range []string{"environ", "cmdline"} {
			b, err := os.ReadFile("/proc/" + e.Name() + "/" + f)
			if err != nil {
				continue
			}
			if f == "environ" {
				readable++
			}
			hit = hit || bytes.Contains(b, needle)
		}
		if hit {
			found = append(found, pid)
		}
	}
	return found, procs, readable
}

// ---------------------------------------------------------------------------
// 2. Writes.

func TestEscapeWrites(t *testing.T) {
	needFull(t)
	needRoot(t, "write grants must be owned by the sandbox's host uid (chown)")
	spec := probeSpec(t, "writes")
	hostUID := spec.HostUID()

	secretDir := traversableDir(t, "escape-secret-")
	canaryFile := filepath.Join(secretDir, "canary")
	writeFile(t, canaryFile, "canary", 0o644)

	// The read grant is world-writable on the host: only the sandbox keeps
	// the probe from writing it.
	readDir := traversableDir(t, "escape-read-")
	if err := os.Chmod(readDir, 0o777); err != nil {
		t.Fatal(err)
	}
	readFile := filepath.Join(readDir, "file")
	writeFile(t, readFile, "read-grant-content", 0o666)

	writeDir := traversableDir(t, "escape-write-")

	t.Run("root-owned-write-grant-refused", func(t *testing.T) {
		s := spec
		s.Write = []string{writeDir}
		_, err := Command(s)
		if err == nil || !strings.Contains(err.Error(), "owned by uid 0") {
			t.Fatalf("Command with a root-owned write grant: %v, want a refusal naming the owner", err)
		}
	})
	if err := os.Chown(writeDir, int(hostUID), int(hostUID)); err != nil {
		t.Fatal(err)
	}

	// Symlinks the host places in the write grant, pointing at a host file
	// outside every grant; the control is that they work on the host.
	rel, err := filepath.Rel(writeDir, canaryFile)
	if err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{"host-abs": canaryFile, "host-rel": rel} {
		if err := os.Symlink(target, filepath.Join(writeDir, name)); err != nil {
			t.Fatal(err)
		}
		if b, err := os.ReadFile(filepath.Join(writeDir, name)); err != nil || string(b) != "canary" {
			t.Fatalf("control: host symlink %s -> %s does not reach the canary on the host: %v", name, target, err)
		}
	}

	passwdBefore, err := os.ReadFile("/etc/passwd")
	if err != nil {
		t.Fatal(err)
	}

	spec.Read = []string{readDir}
	spec.Write = []string{writeDir}
	spec.Env = append(spec.Env, "ESCAPE_READ_FILE="+readFile, "ESCAPE_READ_DIR="+readDir, "ESCAPE_WRITE_DIR="+writeDir)
	r := run(t, spec, 30*time.Second)
	if r.code != 0 {
		t.Fatalf("probe exit %d (%v)", r.code, r.waitErr)
	}
	const erofs, eacces = "refused (EROFS)", "refused (EACCES)"
	r.expect(t, "create-root", erofs, eacces)
	r.expect(t, "create-usr", erofs, eacces)
	r.expect(t, "create-etc", erofs, eacces)
	r.expect(t, "create-dev", erofs, eacces)
	r.expect(t, "write-proc-sys-kernel-hostname", erofs, eacces)
	r.expect(t, "write-etc-passwd", erofs, eacces)
	r.expect(t, "create-read-grant", erofs, eacces)
	r.expect(t, "write-read-grant-file", erofs, eacces)
	r.expect(t, "create-write-grant", "ALLOWED") // control
	r.expect(t, "symlink-create", "ALLOWED")     // control
	r.expect(t, "symlink-read-passwd", "ALLOWED")
	r.expect(t, "symlink-write-passwd", erofs, eacces)
	r.expect(t, "symlink-write-read-grant", erofs, eacces)
	r.expect(t, "hardlink-read-grant", "refused (EXDEV)", "refused (EPERM)", eacces)
	r.expect(t, "hardlink-passwd", "refused (EXDEV)", "refused (EPERM)", eacces)
	r.expect(t, "host-abs-read", "refused (ENOENT)")
	r.expect(t, "host-abs-write", "refused (ENOENT)", eacces)
	r.expect(t, "host-rel-read", "refused (ENOENT)")

	t.Run("written-file-owner", func(t *testing.T) {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(writeDir, "written"), &st); err != nil {
			t.Fatal(err)
		}
		if st.Uid != hostUID {
			t.Fatalf("file written in the grant owned by host uid %d, want %d", st.Uid, hostUID)
		}
	})
	t.Run("host-files-unchanged", func(t *testing.T) {
		if b, _ := os.ReadFile("/etc/passwd"); !bytes.Equal(b, passwdBefore) {
			t.Error("/etc/passwd changed")
		}
		if b, _ := os.ReadFile(readFile); string(b) != "read-grant-content" {
			t.Errorf("read grant file changed: %q", b)
		}
		if b, _ := os.ReadFile(canaryFile); string(b) != "canary" {
			t.Errorf("canary changed: %q", b)
		}
		ents, _ := os.ReadDir(readDir)
		if len(ents) != 1 {
			t.Errorf("read grant holds %d entries, want 1", len(ents))
		}
	})
}

// ---------------------------------------------------------------------------
// 3. Network.

func TestEscapeNetwork(t *testing.T) {
	needFull(t)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepts := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepts <- c
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	udp, err := net.ListenPacket("udp4", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	abstract := "@mcpgate-escape-" + randomHex(t)
	uln, err := net.Listen("unix", abstract)
	if err != nil {
		t.Fatal(err)
	}
	defer uln.Close()

	// Controls: each listener is reachable from the host.
	conn, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	select {
	case c := <-accepts:
		c.Close()
	case <-time.After(5 * time.Second):
		t.Fatal("control: the host's own connection was not accepted")
	}
	uc, err := net.Dial("udp4", udp.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	_, _ = uc.Write([]byte("control"))
	uc.Close()
	buf := make([]byte, 64)
	_ = udp.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := udp.ReadFrom(buf); err != nil {
		t.Fatalf("control: host datagram not received: %v", err)
	}
	ac, err := net.Dial("unix", abstract)
	if err != nil {
		t.Fatalf("control: abstract socket: %v", err)
	}
	ac.Close()

	r := run(t, probeSpec(t, "network", "ESCAPE_PORT="+strconv.Itoa(port), "ESCAPE_ABSTRACT="+abstract), 30*time.Second)
	if r.code != 0 {
		t.Fatalf("probe exit %d (%v)", r.code, r.waitErr)
	}
	r.expect(t, "udp-self", "ALLOWED") // control: the sandbox's own loopback works
	r.expect(t, "tcp-host-loopback", "refused (ECONNREFUSED)", "refused (EACCES)")
	r.expect(t, "tcp-metadata", "refused (ENETUNREACH)", "refused (EACCES)")
	r.expect(t, "tcp-public", "refused (ENETUNREACH)", "refused (EACCES)")
	r.expect(t, "udp-metadata", "refused (ENETUNREACH)")
	r.expect(t, "udp-public", "refused (ENETUNREACH)")
	r.expect(t, "abstract-unix", "refused (ECONNREFUSED)", "refused (EPERM)")
	r.expect(t, "interfaces", "lo")
	r.expect(t, "proc-net-dev", "lo")
	t.Run("fail-fast", func(t *testing.T) {
		for _, k := range []string{"tcp-host-loopback-ms", "tcp-metadata-ms", "tcp-public-ms"} {
			ms, err := strconv.Atoi(r.lines[k])
			if err != nil || ms > 1000 {
				t.Errorf("%s = %q, want a refusal within a second", k, r.lines[k])
			}
		}
	})
	t.Run("host-listeners-untouched", func(t *testing.T) {
		select {
		case c := <-accepts:
			c.Close()
			t.Fatal("the host's TCP listener accepted a connection from the sandbox")
		default:
		}
		_ = udp.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if n, _, err := udp.ReadFrom(buf); err == nil {
			t.Fatalf("the host's UDP socket received %q from the sandbox", buf[:n])
		}
	})
}

// ---------------------------------------------------------------------------
// 4. Syscalls.

func TestEscapeSyscalls(t *testing.T) {
	needFull(t)
	r := run(t, probeSpec(t, "syscalls"), 30*time.Second)
	if r.code != 0 {
		t.Fatalf("probe exit %d (%v)", r.code, r.waitErr)
	}
	r.expect(t, "getpid", "ALLOWED") // control: the harness reports success
	const eperm = "refused (EPERM)"
	for _, name := range []string{
		"mount", "umount2", "unshare-newuser", "unshare-newns", "setns-net",
		"ptrace-traceme", "ptrace-attach-1", "bpf-prog-load", "keyctl", "add_key",
		"io_uring_setup", "perf_event_open", "clone-newuser", "chroot", "pivot_root",
		"open_by_handle_at",
	} {
		r.expect(t, name, eperm)
	}
	r.expect(t, "open-ns-net", "ALLOWED") // setns had a real descriptor
	r.expect(t, "clone3", "refused (ENOSYS)")
	r.expect(t, "max_user_namespaces", "0")

	// Controls: where success is harmless, the same calls from the same
	// probe in an unsandboxed child of the root gateway reach the kernel.
	t.Run("control", func(t *testing.T) {
		needRoot(t, "the unsandboxed control calls need privileges")
		s := probeSpec(t, "syscalls-control")
		s.Isolation = IsolationNone
		c := run(t, s, 30*time.Second)
		if c.code != 0 {
			t.Fatalf("control exit %d (%v)", c.code, c.waitErr)
		}
		c.expect(t, "getpid", "ALLOWED")
		c.expect(t, "keyctl", "ALLOWED")
		c.expect(t, "perf_event_open", "ALLOWED")
		c.expect(t, "chroot", "ALLOWED")
		// These fail in the kernel itself, not in a filter.
		c.expectReached(t, "bpf-prog-load")
		c.expectReached(t, "clone3")
		c.expectReached(t, "unshare-newuser")
		c.expectReached(t, "open_by_handle_at")
		if b, err := os.ReadFile("/proc/sys/kernel/io_uring_disabled"); err == nil && strings.TrimSpace(string(b)) == "0" {
			c.expect(t, "io_uring_setup", "ALLOWED")
		}
		t.Run("max_user_namespaces", func(t *testing.T) {
			if v := c.lines["max_user_namespaces"]; v == "0" || v == "" {
				t.Fatalf("host max_user_namespaces = %q: the sandbox's 0 would prove nothing", v)
			}
		})
	})
}

// ---------------------------------------------------------------------------
// 5. The i386 syscall ABI.

func TestEscapeInt80(t *testing.T) {
	needFull(t)
	if runtime.GOARCH != "amd64" {
		t.Skip("int 0x80 exists only on amd64")
	}
	// Control: outside the sandbox, an i386 call returns to the probe.
	s := probeSpec(t, "int80-control")
	s.Isolation = IsolationNone
	c := run(t, s, 30*time.Second)
	if c.code != 0 || c.lines["after"] == "" {
		t.Fatalf("control: unsandboxed i386 getpid did not return (exit %d): int 0x80 unusable here?", c.code)
	}
	r := run(t, probeSpec(t, "int80"), 30*time.Second)
	if r.lines["before"] != "i386 unshare(CLONE_NEWUSER)" {
		t.Fatalf("the probe did not reach the call")
	}
	if after, ok := r.lines["after"]; ok {
		t.Fatalf("i386 unshare(CLONE_NEWUSER) returned %s: the probe survived", after)
	}
	if r.code != 128+int(unix.SIGSYS) {
		t.Fatalf("sandbox exit %d, want %d (the tool killed by SIGSYS)", r.code, 128+int(unix.SIGSYS))
	}
}

// ---------------------------------------------------------------------------
// 6. Fork bomb, 7. memory bomb.

func TestEscapeForkBomb(t *testing.T) {
	needFull(t)
	needRoot(t, "the pids limit is a cgroup")
	spec := Spec{
		Name: "escape-forkbomb",
		// The shell stays: the bomb's processes, orphaned to the init,
		// would otherwise die with the sandbox when it exits.
		Argv:    []string{"/bin/sh", "-c", "b(){ b|b& }; b; sleep 30"},
		Env:     []string{"PATH=/usr/bin:/bin"},
		Limits:  Limits{Pids: 64},
		UIDBase: escapeUIDBase,
	}
	r := run(t, spec, 10*time.Second)
	if r.exit.Limit != "pids" {
		t.Fatalf("Finish: limit %q, want pids (after %v, exit %d)", r.exit.Limit, r.elapsed, r.code)
	}
	t.Logf("fork bomb killed after %v", r.elapsed)
	if left := sandboxProcesses(escapeUIDBase); len(left) > 0 {
		t.Fatalf("sandbox processes left on the host after Finish: %v", left)
	}
}

func TestEscapeMemoryBomb(t *testing.T) {
	needFull(t)
	needRoot(t, "the memory limit is a cgroup")
	spec := probeSpec(t, "membomb")
	spec.Limits = Limits{MemoryBytes: 128 << 20}
	r := run(t, spec, 30*time.Second)
	if r.lines["allocated"] == "" {
		t.Fatal("the probe allocated nothing")
	}
	if _, ok := r.lines["survived"]; ok {
		t.Fatal("the probe survived allocating past the limit")
	}
	if r.exit.Limit != "memory" {
		t.Fatalf("Finish: limit %q, want memory", r.exit.Limit)
	}
	if r.code != 128+int(unix.SIGKILL) {
		t.Fatalf("sandbox exit %d, want %d (the tool killed by SIGKILL)", r.code, 128+int(unix.SIGKILL))
	}
	if left := sandboxProcesses(escapeUIDBase); len(left) > 0 {
		t.Fatalf("sandbox processes left on the host after Finish: %v", left)
	}
}

// sandboxProcesses lists host processes whose real uid is in the sandbox
// range starting at base.
func sandboxProcesses(base uint32) []string {
	var out []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/status")
		if err != nil {
			continue
		}
		for l := range strings.SplitSeq(string(b), "\n") {
			v, ok := strings.CutPrefix(l, "Uid:")
			if !ok {
				continue
			}
			f := strings.Fields(v)
			if len(f) == 0 {
				break
			}
			if uid, err := strconv.ParseUint(f[0], 10, 32); err == nil && uid >= uint64(base) && uid < uint64(base)+65536 {
				out = append(out, e.Name()+" (uid "+f[0]+")")
			}
		}
	}
	return out
}

// ---------------------------------------------------------------------------
// 8. Credentials and setuid binaries.

func TestEscapeCredentials(t *testing.T) {
	needFull(t)
	needRoot(t, "the tool's uid is ChildUID only under a root gateway")
	r := run(t, probeSpec(t, "creds"), 30*time.Second)
	if r.code != 0 {
		t.Fatalf("probe exit %d (%v)", r.code, r.waitErr)
	}
	checkSandboxCreds(t, r)
}

func checkSandboxCreds(t *testing.T, r probeRun) {
	t.Helper()
	id := strconv.Itoa(ChildUID)
	r.expect(t, "uid", id)
	r.expect(t, "euid", id)
	r.expect(t, "CapEff", "0000000000000000")
	r.expect(t, "CapPrm", "0000000000000000")
	r.expect(t, "CapBnd", "0000000000000000")
	r.expect(t, "CapAmb", "0000000000000000")
	r.expect(t, "NoNewPrivs", "1")
	r.expect(t, "Seccomp", "2")
}

func TestEscapeSetuid(t *testing.T) {
	needFull(t)
	needRoot(t, "making a root-owned setuid binary")
	dir := traversableDir(t, "escape-setuid-")
	suid := filepath.Join(dir, "probe")
	src, err := os.Open(testExe(t))
	if err != nil {
		t.Fatal(err)
	}
	dst, err := os.OpenFile(suid, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.Copy(dst, src)
	src.Close()
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(suid, 0, 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(suid, 0o4755|os.ModeSetuid); err != nil {
		t.Fatal(err)
	}
	spec := probeSpec(t, "creds")
	spec.Argv[0] = suid
	spec.Read = []string{dir}

	// Control: on the host, the copy does make an unprivileged user root.
	t.Run("control-host", func(t *testing.T) {
		cmd := exec.Command(suid, spec.Argv[1:]...)
		cmd.Env = spec.Env
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := cmd.Output()
		lines := parseProbe(string(out))
		if err != nil || lines["uid"] != "65534" || lines["euid"] != "0" {
			t.Fatalf("setuid copy on the host as uid 65534: %v, uid %q euid %q\n%s", err, lines["uid"], lines["euid"], out)
		}
	})
	r := run(t, spec, 30*time.Second)
	if r.code != 0 {
		t.Fatalf("probe exit %d (%v)", r.code, r.waitErr)
	}
	r.expect(t, "exe-setuid", "yes") // the probe really ran the setuid file
	checkSandboxCreds(t, r)
}

// ---------------------------------------------------------------------------
// 9. A killed gateway.

func TestEscapeKilledGateway(t *testing.T) {
	needFull(t)
	marker := randomHex(t)
	needle := []byte(escapeMarkerVar + "=" + marker)
	cmd := exec.Command(testExe(t), "-test.run=^TestEscapeFakeGateway$", "-test.count=1", "-test.timeout=120s")
	cmd.Env = append(os.Environ(), escapeGatewayEnv+"="+marker, "GORACE=atexit_sleep_ms=0",
		"MCPGATE_ESCAPE_UIDBASE="+strconv.FormatUint(uint64(escapeUIDBase), 10))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	t.Cleanup(func() {
		if !killed {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	started := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if sc.Text() == "started" {
				started <- true
				_, _ = io.Copy(io.Discard, stdout)
				return
			}
		}
		started <- false
	}()
	select {
	case ok := <-started:
		if !ok {
			_ = cmd.Wait()
			killed = true
			t.Fatalf("fake gateway failed:\n%s", stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("fake gateway did not start the sandbox:\n%s", stderr.String())
	}

	// Control: the sandbox's shell and both sleeps are visible to the
	// host scan.
	var found []int
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		found, _, _ = scanProc(needle)
		if len(found) >= 3 || time.Now().After(deadline) {
			break
		}
	}
	if len(found) < 3 {
		t.Fatalf("control: the marker is in %d host processes (%v), want the shell and two sleeps", len(found), found)
	}

	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	killed = true
	var left []int
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		left, _, _ = scanProc(needle)
		if len(left) == 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(left) > 0 {
		for _, pid := range left {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		t.Fatalf("5 s after the gateway was killed, sandbox processes %v remain", left)
	}
}

// TestEscapeFakeGateway is TestEscapeKilledGateway's gateway: it starts a
// sandbox that would run for minutes, reports, and blocks until killed.
func TestEscapeFakeGateway(t *testing.T) {
	marker := os.Getenv(escapeGatewayEnv)
	if marker == "" {
		return // only a helper
	}
	base, _ := strconv.ParseUint(os.Getenv("MCPGATE_ESCAPE_UIDBASE"), 10, 32)
	c, err := Command(Spec{
		Name: "escape-gateway",
		Argv: []string{"/bin/sh", "-c", "sleep 300 & sleep 300 & wait"},
		Env:  []string{escapeMarkerVar + "=" + marker, "PATH=/usr/bin:/bin"},
		// No cgroup: a killed gateway cannot remove one.
		Limits:  Limits{MemoryBytes: -1, Pids: -1},
		UIDBase: uint32(base),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if err := c.Started(context.Background()); err != nil {
		t.Fatal(err)
	}
	fmt.Println("started")
	// Bounded, should the test die without killing us.
	time.Sleep(90 * time.Second)
	_ = c.Cmd.Process.Kill()
	_ = c.Cmd.Wait()
	c.Finish()
}

// ---------------------------------------------------------------------------
// 10. Descriptors.

func TestEscapeDescriptors(t *testing.T) {
	needFull(t)
	// A descriptor of the gateway's that is not close-on-exec: a plain
	// child inherits it (the control), the sandboxed tool must not.
	fd, err := unix.Open("/etc/hostname", unix.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	want := strconv.Itoa(fd)

	s := probeSpec(t, "fds")
	s.Isolation = IsolationNone
	c := run(t, s, 30*time.Second)
	if !slices.Contains(strings.Split(c.lines["fds-inherited"], ","), want) {
		t.Fatalf("control: the unsandboxed probe does not report the inherited descriptor %s (fds %q)", want, c.lines["fds-inherited"])
	}
	r := run(t, probeSpec(t, "fds"), 30*time.Second)
	if r.code != 0 {
		t.Fatalf("probe exit %d (%v)", r.code, r.waitErr)
	}
	r.expect(t, "fds-inherited", "0,1,2")

	// The same without a Go runtime in the way: ls lists its own
	// descriptors, 3 being the directory it reads.
	ls := Spec{Name: "escape-fds-ls", Argv: []string{"/bin/ls", "/proc/self/fd"}, UIDBase: escapeUIDBase}
	lsPlain := ls
	lsPlain.Isolation = IsolationNone
	if c := run(t, lsPlain, 30*time.Second); !slices.Contains(strings.Fields(c.stdout), want) {
		t.Fatalf("control: unsandboxed ls does not list the inherited descriptor %s: %q", want, c.stdout)
	}
	if r := run(t, ls, 30*time.Second); strings.Join(strings.Fields(r.stdout), ",") != "0,1,2,3" {
		t.Fatalf("sandboxed ls lists descriptors %q, want 0 1 2 and its own 3", r.stdout)
	}
}

// ---------------------------------------------------------------------------
// Probe side: runs inside the sandbox (or, for the controls, as a plain
// child).

// TestEscapeProbe is the escape suite's probe program; without its
// environment variable it does nothing.
func TestEscapeProbe(t *testing.T) {
	mode := os.Getenv(escapeProbeEnv)
	if mode == "" {
		return
	}
	switch mode {
	case "fds":
		probeFDs() // first, before the runtime opens anything
	case "secrets":
		sandboxedOnly()
		probeSecrets()
	case "writes":
		sandboxedOnly()
		probeWrites()
	case "network":
		sandboxedOnly()
		probeNetwork()
	case "syscalls":
		sandboxedOnly()
		probeSyscalls(true)
	case "syscalls-control":
		probeSyscalls(false)
	case "int80":
		sandboxedOnly()
		report("before", "i386 unshare(CLONE_NEWUSER)")
		r := int80.Syscall(310, unix.CLONE_NEWUSER, 0, 0)
		report("after", strconv.Itoa(int(int32(r))))
	case "int80-control":
		r := int80.Syscall(20, 0, 0, 0) // i386 getpid: harmless anywhere
		report("after", strconv.Itoa(int(int32(r))))
	case "membomb":
		sandboxedOnly()
		probeMemBomb()
	case "creds":
		probeCreds()
	case "egress":
		sandboxedOnly()
		probeEgress()
	case "weak":
		// Safe anywhere: reads, writes only where the test says, and
		// syscalls that change only the calling process.
		probeWeak()
	default:
		report("error", "unknown probe "+mode)
		os.Exit(2)
	}
}

func report(check, result string) {
	fmt.Printf("%s%s: %s\n", escapePrefix, check, result)
}

func outcome(err error) string {
	if err == nil {
		return "ALLOWED"
	}
	var errno unix.Errno
	if errors.As(err, &errno) {
		return "refused (" + unix.ErrnoName(errno) + ")"
	}
	return "refused (" + err.Error() + ")"
}

func errnoErr(e unix.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

// sandboxedOnly stops a probe that would be dangerous on the host (it
// mounts, forks namespaces, eats memory) unless it runs in a sandbox.
func sandboxedOnly() {
	var u unix.Utsname
	cmdline, _ := os.ReadFile("/proc/1/cmdline")
	if unix.Uname(&u) != nil || unix.ByteSliceToString(u.Nodename[:]) != sandboxHostname ||
		!bytes.HasPrefix(cmdline, []byte(initArg0+"\x00")) || os.Getpid() == 1 {
		report("guard", "not in a sandbox: refusing to probe")
		os.Exit(3)
	}
}

func probeFDs() {
	dir, err := unix.Open("/proc/self/fd", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		report("fds", outcome(err))
		return
	}
	var fds []int
	buf := make([]byte, 4096)
	for {
		n, err := unix.Getdents(dir, buf)
		if err != nil || n <= 0 {
			break
		}
		_, _, names := unix.ParseDirent(buf[:n], -1, nil)
		for _, name := range names {
			if fd, err := strconv.Atoi(name); err == nil && fd != dir {
				fds = append(fds, fd)
			}
		}
	}
	unix.Close(dir)
	slices.Sort(fds)
	var all, inherited []string
	for _, fd := range fds {
		all = append(all, strconv.Itoa(fd))
		target, _ := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
		report("fd-"+strconv.Itoa(fd), target)
		// The Go runtime's own: its netpoller (timers need it) and,
		// outside the sandbox, the cgroup CPU limit files it reads.
		if target == "anon_inode:[eventpoll]" || target == "anon_inode:[eventfd]" ||
			strings.HasPrefix(target, "/sys/fs/cgroup/") {
			continue
		}
		inherited = append(inherited, strconv.Itoa(fd))
	}
	report("fds", strings.Join(all, ","))
	report("fds-inherited", strings.Join(inherited, ","))
}

func readCheck(check, path string) {
	_, err := os.ReadFile(path)
	report(check, outcome(err))
}

func probeSecrets() {
	readCheck("etc-passwd", "/etc/passwd")
	readCheck("etc-shadow", "/etc/shadow")
	readCheck("granted-file", os.Getenv("ESCAPE_GRANTED"))
	readCheck("canary-file", os.Getenv("ESCAPE_CANARY"))
	readCheck("proc1-root-passwd", "/proc/1/root/etc/passwd")

	needle, err := hex.DecodeString(os.Getenv("ESCAPE_NEEDLE_HEX"))
	if err != nil || len(needle) == 0 {
		report("scan-canary", "no needle")
		return
	}
	if found, _, _ := scanProc([]byte(escapeProbeEnv + "=secrets")); len(found) > 0 {
		report("scan-self", "found")
	} else {
		report("scan-self", "not found")
	}
	found, procs, readable := scanProc(needle)
	if len(found) > 0 {
		report("scan-canary", fmt.Sprintf("FOUND in %v", found))
	} else {
		report("scan-canary", fmt.Sprintf("not found (%d processes, %d environs readable)", procs, readable))
	}

	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			pids = append(pids, pid)
		}
	}
	slices.Sort(pids)
	var s []string
	for _, p := range pids {
		s = append(s, strconv.Itoa(p))
	}
	report("pids", strings.Join(s, ","))
	report("self", strconv.Itoa(os.Getpid()))
	cmdline, _ := os.ReadFile("/proc/1/cmdline")
	arg0, _, _ := bytes.Cut(cmdline, []byte{0})
	report("pid1", string(arg0))
}

func createCheck(check, path string) {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o644)
	if err == nil {
		_, err = unix.Write(fd, []byte("escaped\n"))
		unix.Close(fd)
	}
	report(check, outcome(err))
}

func writeCheck(check, path string) {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_APPEND|unix.O_CLOEXEC, 0)
	if err == nil {
		unix.Close(fd) // the open is the escape; nothing is written
	}
	report(check, outcome(err))
}

func probeWrites() {
	w, rd, rf := os.Getenv("ESCAPE_WRITE_DIR"), os.Getenv("ESCAPE_READ_DIR"), os.Getenv("ESCAPE_READ_FILE")
	createCheck("create-root", "/escape")
	createCheck("create-usr", "/usr/escape")
	createCheck("create-etc", "/etc/escape")
	createCheck("create-dev", "/dev/escape")
	writeCheck("write-proc-sys-kernel-hostname", "/proc/sys/kernel/hostname")
	writeCheck("write-etc-passwd", "/etc/passwd")
	createCheck("create-read-grant", rd+"/escape")
	writeCheck("write-read-grant-file", rf)
	createCheck("create-write-grant", w+"/written")

	report("symlink-create", outcome(errors.Join(
		unix.Symlink("/etc/passwd", w+"/to-passwd"),
		unix.Symlink(rf, w+"/to-read-grant"))))
	readCheck("symlink-read-passwd", w+"/to-passwd")
	writeCheck("symlink-write-passwd", w+"/to-passwd")
	writeCheck("symlink-write-read-grant", w+"/to-read-grant")
	report("hardlink-read-grant", outcome(unix.Link(rf, w+"/hardlink-read-grant")))
	report("hardlink-passwd", outcome(unix.Link("/etc/passwd", w+"/hardlink-passwd")))

	readCheck("host-abs-read", w+"/host-abs")
	writeCheck("host-abs-write", w+"/host-abs")
	readCheck("host-rel-read", w+"/host-rel")
}

// tcpConnect connects to ip:port with a 3 s bound and reports how long the
// answer took.
func tcpConnect(check string, ip [4]byte, port int) {
	start := time.Now()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err == nil {
		tv := unix.Timeval{Sec: 3}
		_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv)
		err = unix.Connect(fd, &unix.SockaddrInet4{Port: port, Addr: ip})
		unix.Close(fd)
	}
	report(check, outcome(err))
	report(check+"-ms", strconv.Itoa(int(time.Since(start).Milliseconds())))
}

func udpConnect(check string, ip [4]byte, port int) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err == nil {
		err = unix.Connect(fd, &unix.SockaddrInet4{Port: port, Addr: ip})
		if err == nil {
			_, err = unix.Write(fd, []byte("escape"))
		}
		unix.Close(fd)
	}
	report(check, outcome(err))
}

func probeNetwork() {
	port, _ := strconv.Atoi(os.Getenv("ESCAPE_PORT"))
	loopback := [4]byte{127, 0, 0, 1}

	// Control: the sandbox's own loopback carries a datagram.
	func() {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			report("udp-self", outcome(err))
			return
		}
		defer unix.Close(fd)
		tv := unix.Timeval{Sec: 3}
		_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
		if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: loopback}); err != nil {
			report("udp-self", outcome(err))
			return
		}
		sa, err := unix.Getsockname(fd)
		if err == nil {
			err = unix.Sendto(fd, []byte("self"), 0, sa)
		}
		if err == nil {
			_, _, err = unix.Recvfrom(fd, make([]byte, 16), 0)
		}
		report("udp-self", outcome(err))
	}()

	tcpConnect("tcp-host-loopback", loopback, port)
	// A datagram to the host's UDP socket on the same port (the host
	// checks that nothing arrived).
	udpConnect("udp-host-loopback", loopback, port)
	tcpConnect("tcp-metadata", [4]byte{169, 254, 169, 254}, 80)
	tcpConnect("tcp-public", [4]byte{1, 1, 1, 1}, 443)
	udpConnect("udp-metadata", [4]byte{169, 254, 169, 254}, 80)
	udpConnect("udp-public", [4]byte{1, 1, 1, 1}, 53)

	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err == nil {
		err = unix.Connect(fd, &unix.SockaddrUnix{Name: os.Getenv("ESCAPE_ABSTRACT")})
		unix.Close(fd)
	}
	report("abstract-unix", outcome(err))

	ifs, err := net.Interfaces()
	if err != nil {
		report("interfaces", outcome(err))
	} else {
		var names []string
		for _, i := range ifs {
			names = append(names, i.Name)
		}
		report("interfaces", strings.Join(names, ","))
	}
	dev, err := os.ReadFile("/proc/net/dev")
	if err != nil {
		report("proc-net-dev", outcome(err))
	} else {
		var names []string
		for l := range strings.SplitSeq(string(dev), "\n") {
			if name, _, ok := strings.Cut(l, ":"); ok {
				names = append(names, strings.TrimSpace(name))
			}
		}
		report("proc-net-dev", strings.Join(names, ","))
	}
}

func rawCheck(check string, r uintptr, e unix.Errno, isFD bool) {
	if e == 0 && isFD {
		unix.Close(int(r))
	}
	report(check, outcome(errnoErr(e)))
}

func cstr(s string) uintptr {
	p, err := unix.BytePtrFromString(s)
	if err != nil {
		panic(err)
	}
	return uintptr(unsafe.Pointer(p))
}

// probeSyscalls tries the syscalls the sandbox must refuse. sandboxed
// false is the control run in a plain child of a root gateway: only the
// calls whose success is harmless there.
func probeSyscalls(sandboxed bool) {
	_, _, e := unix.Syscall(unix.SYS_GETPID, 0, 0, 0)
	report("getpid", outcome(errnoErr(e)))

	_, err := unix.KeyctlGetKeyringID(unix.KEY_SPEC_USER_KEYRING, false)
	report("keyctl", outcome(err))
	attr := unix.PerfEventAttr{Type: unix.PERF_TYPE_SOFTWARE, Config: unix.PERF_COUNT_SW_CPU_CLOCK}
	attr.Size = uint32(unsafe.Sizeof(attr))
	attr.Bits = unix.PerfBitDisabled
	pfd, err := unix.PerfEventOpen(&attr, 0, -1, -1, unix.PERF_FLAG_FD_CLOEXEC)
	if err == nil {
		unix.Close(pfd)
	}
	report("perf_event_open", outcome(err))
	var params [120]byte // struct io_uring_params
	r, _, e := unix.Syscall(unix.SYS_IO_URING_SETUP, 1, uintptr(unsafe.Pointer(&params)), 0)
	rawCheck("io_uring_setup", r, e, true)
	// An empty attribute: the kernel answers EINVAL, the filter EPERM.
	_, _, e = unix.Syscall(unix.SYS_BPF, unix.BPF_PROG_LOAD, 0, 0)
	rawCheck("bpf-prog-load", 0, e, false)
	// A null clone_args: the kernel answers EINVAL, the filter ENOSYS.
	_, _, e = unix.Syscall(unix.SYS_CLONE3, 0, 0, 0)
	rawCheck("clone3", 0, e, false)
	// A Go process has several threads: the kernel answers EINVAL, the
	// filter EPERM.
	_, _, e = unix.Syscall(unix.SYS_UNSHARE, unix.CLONE_NEWUSER, 0, 0)
	rawCheck("unshare-newuser", 0, e, false)
	report("chroot", outcome(unix.Chroot("/")))
	var handle struct {
		bytes uint32
		typ   int32
		data  [8]byte
	}
	handle.bytes = 8
	root, err := unix.Open("/", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err == nil {
		r, _, e = unix.Syscall(unix.SYS_OPEN_BY_HANDLE_AT, uintptr(root), uintptr(unsafe.Pointer(&handle)), unix.O_RDONLY)
		rawCheck("open_by_handle_at", r, e, true)
		unix.Close(root)
	}
	b, _ := os.ReadFile("/proc/sys/user/max_user_namespaces")
	report("max_user_namespaces", strings.TrimSpace(string(b)))
	if !sandboxed {
		return
	}

	report("mount", outcome(unix.Mount("none", "/tmp", "tmpfs", 0, "")))
	report("umount2", outcome(unix.Unmount("/proc", unix.MNT_DETACH)))
	_, _, e = unix.Syscall(unix.SYS_UNSHARE, unix.CLONE_NEWNS, 0, 0)
	rawCheck("unshare-newns", 0, e, false)
	nsfd, err := unix.Open("/proc/self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	report("open-ns-net", outcome(err))
	if err == nil {
		report("setns-net", outcome(unix.Setns(nsfd, unix.CLONE_NEWNET)))
		unix.Close(nsfd)
	}
	_, _, e = unix.Syscall(unix.SYS_PTRACE, unix.PTRACE_TRACEME, 0, 0)
	rawCheck("ptrace-traceme", 0, e, false)
	_, _, e = unix.Syscall(unix.SYS_PTRACE, unix.PTRACE_ATTACH, 1, 0)
	rawCheck("ptrace-attach-1", 0, e, false)
	keyring := unix.KEY_SPEC_PROCESS_KEYRING
	r, _, e = unix.Syscall6(unix.SYS_ADD_KEY, cstr("user"), cstr("escape"), cstr("x"), 1, uintptr(keyring), 0)
	rawCheck("add_key", r, e, false)
	pid, e := rawClone(unix.CLONE_NEWUSER | uintptr(unix.SIGCHLD))
	if e == 0 {
		var ws unix.WaitStatus
		_, _ = unix.Wait4(int(pid), &ws, 0, nil)
	}
	rawCheck("clone-newuser", 0, e, false)
	report("pivot_root", outcome(unix.PivotRoot("/tmp", "/tmp")))
}

// rawClone forks with flags through the clone syscall itself (no libc, no
// runtime): the child, if the kernel makes one, exits at once.
//
//go:norace
//go:nosplit
func rawClone(flags uintptr) (uintptr, unix.Errno) {
	r, _, e := unix.RawSyscall6(unix.SYS_CLONE, flags, 0, 0, 0, 0, 0)
	if e == 0 && r == 0 {
		unix.RawSyscall(unix.SYS_EXIT_GROUP, 0, 0, 0)
	}
	return r, e
}

func probeMemBomb() {
	const chunk = 16 << 20
	var held [][]byte
	for i := 1; i <= 256; i++ { // 4 GiB, far past any limit the test sets
		b := make([]byte, chunk)
		for j := 0; j < len(b); j += 4096 {
			b[j] = 1
		}
		held = append(held, b)
		report("allocated", strconv.Itoa(i*16)+" MiB")
	}
	report("survived", strconv.Itoa(len(held)))
}

func probeCreds() {
	report("uid", strconv.Itoa(os.Getuid()))
	report("euid", strconv.Itoa(os.Geteuid()))
	if exe, err := os.Executable(); err == nil {
		if fi, err := os.Stat(exe); err == nil && fi.Mode()&os.ModeSetuid != 0 {
			report("exe-setuid", "yes")
		} else {
			report("exe-setuid", "no")
		}
	}
	b, _ := os.ReadFile("/proc/self/status")
	for l := range strings.SplitSeq(string(b), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		switch k {
		case "CapEff", "CapPrm", "CapBnd", "CapAmb", "CapInh", "NoNewPrivs", "Seccomp":
			report(k, strings.TrimSpace(v))
		}
	}
}
