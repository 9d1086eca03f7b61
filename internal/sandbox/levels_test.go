//go:build linux

package sandbox

import (
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestWeakerIsolationLevels: the levels an operator may accept where full
// isolation is impossible still confine files, network, credentials and
// syscalls. Both run on this host because it offers what they need (root
// for no-userns); the probe is safe outside a sandbox by construction.
func TestWeakerIsolationLevels(t *testing.T) {
	needRoot(t, "checks ownership by the sandbox's host uid, and no-userns needs a root gateway")
	for _, level := range []Isolation{IsolationNoUserNS, IsolationLandlockOnly} {
		t.Run(string(level), func(t *testing.T) {
			if err := Probe().Offers(level); err != nil {
				t.Skipf("this host does not offer %s: %v", level, err)
			}
			dirs := map[string]string{}
			for _, name := range []string{"secret", "hosttmp", "grant"} {
				d, err := os.MkdirTemp("", "mcpgate-level-"+name+"-")
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { os.RemoveAll(d) })
				os.Chmod(d, 0o777)
				dirs[name] = d
			}
			canary := filepath.Join(dirs["secret"], "canary")
			if err := os.WriteFile(canary, []byte("secret"), 0o644); err != nil {
				t.Fatal(err)
			}
			var directHits, proxiedHits atomic.Int32
			direct := listenCounting(t, &directHits)
			allowed := serveHTTPCounting(t, &proxiedHits)

			spec := probeSpec(t, "weak", "CANARY="+canary, "HOSTTMP="+dirs["hosttmp"], "GRANT="+dirs["grant"],
				"DIRECT_ADDR="+direct, "ALLOWED_ADDR="+allowed)
			spec.Isolation = level
			spec.Write = []string{dirs["grant"]}
			spec.Allow = []string{allowed}
			r := run(t, spec, 30*time.Second)
			want := map[string]string{
				"read /etc/passwd":     "ALLOWED",
				"read /etc/shadow":     "refused",
				"read canary":          "refused",
				"list /root":           "refused",
				"write host tmp":       "refused",
				"write grant":          "ALLOWED",
				"connect host":         "refused",
				"proxy allowed":        "200",
				"unshare user":         "refused (EPERM)",
				"uid":                  strconv.FormatUint(uint64(spec.HostUID()), 10),
				"CapEff":               "0000000000000000",
				"NoNewPrivs":           "1",
				"Seccomp":              "2",
				"ptrace attach parent": "refused",
			}
			for check, w := range want {
				if got := r.lines[check]; !strings.HasPrefix(got, w) {
					t.Errorf("%s: %s = %q, want %q", level, check, got, w)
				}
			}
			if t.Failed() {
				t.Logf("probe output:\n%s%s", r.stdout, r.stderr)
			}
			if directHits.Load() != 0 || proxiedHits.Load() != 1 {
				t.Errorf("host saw %d direct connections and %d proxied requests, want 0 and 1", directHits.Load(), proxiedHits.Load())
			}
			fi, err := os.Stat(filepath.Join(dirs["grant"], "written"))
			if err != nil || fi.Sys().(*syscall.Stat_t).Uid != spec.HostUID() {
				t.Errorf("file written in the grant: %v, want owner %d", err, spec.HostUID())
			}
		})
	}
}

// listenCounting accepts and counts TCP connections on host loopback.
func listenCounting(t *testing.T, hits *atomic.Int32) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			hits.Add(1)
			c.Close()
		}
	}()
	return ln.Addr().String()
}

// serveHTTPCounting serves HTTP on host loopback, counting requests.
func serveHTTPCounting(t *testing.T, hits *atomic.Int32) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Write([]byte("hello from the host"))
	}), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// probeWeak checks confinement without relying on namespaces; everything
// it tries is harmless if it succeeds (it reads, writes in directories the
// test made, and changes only itself).
func probeWeak() {
	_, err := os.ReadFile("/etc/passwd")
	report("read /etc/passwd", outcome(err))
	_, err = os.ReadFile("/etc/shadow")
	report("read /etc/shadow", outcome(err))
	_, err = os.ReadFile(os.Getenv("CANARY"))
	report("read canary", outcome(err))
	_, err = os.ReadDir("/root")
	report("list /root", outcome(err))
	err = os.WriteFile(filepath.Join(os.Getenv("HOSTTMP"), "written"), []byte("x"), 0o644)
	report("write host tmp", outcome(err))
	err = os.WriteFile(filepath.Join(os.Getenv("GRANT"), "written"), []byte("x"), 0o644)
	report("write grant", outcome(err))
	c, err := net.DialTimeout("tcp", os.Getenv("DIRECT_ADDR"), 2*time.Second)
	if err == nil {
		c.Close()
	}
	report("connect host", outcome(err))
	proxy := strings.TrimPrefix(os.Getenv("HTTPS_PROXY"), "http://")
	report("proxy allowed", tunnelGet(proxy, os.Getenv("ALLOWED_ADDR")))
	report("unshare user", outcome(errnoErr(rawUnshare(unix.CLONE_NEWUSER))))
	_, _, e := unix.RawSyscall(unix.SYS_PTRACE, unix.PTRACE_ATTACH, uintptr(os.Getppid()), 0)
	report("ptrace attach parent", outcome(errnoErr(e)))
	report("uid", strconv.Itoa(os.Getuid()))
	status, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(status), "\n") {
		k, v, _ := strings.Cut(line, ":")
		switch k {
		case "CapEff", "NoNewPrivs", "Seccomp":
			report(k, strings.TrimSpace(v))
		}
	}
}

func rawUnshare(flags uintptr) unix.Errno {
	_, _, e := unix.RawSyscall(unix.SYS_UNSHARE, flags, 0, 0)
	return e
}

// TestReadGrantCoversItsSubmounts: a read grant whose host directory has
// a mount below it is read-only all the way down: the bind is recursive,
// and every mount under it is remounted read-only too.
func TestReadGrantCoversItsSubmounts(t *testing.T) {
	needFull(t)
	needRoot(t, "mounts a tmpfs on the host, below a test directory")
	parent, err := os.MkdirTemp("", "mcpgate-submount-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(parent) })
	os.Chmod(parent, 0o755)
	sub := filepath.Join(parent, "sub")
	if err := os.Mkdir(sub, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", sub, "tmpfs", 0, "mode=0777,size=1m"); err != nil {
		t.Fatalf("mount a tmpfs below the grant: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(sub, unix.MNT_DETACH) })
	// Control: the submount is writable on the host.
	if err := os.WriteFile(filepath.Join(sub, "host"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	spec := probeSpec(t, "weak", "GRANT="+sub, "HOSTTMP="+parent)
	spec.Read = []string{parent}
	r := run(t, spec, 30*time.Second)
	if got := r.lines["write grant"]; !strings.HasPrefix(got, "refused (EROFS)") {
		t.Errorf("write into a submount of a read grant: %q, want refused (EROFS)\n%s%s", got, r.stdout, r.stderr)
	}
	if got := r.lines["write host tmp"]; !strings.HasPrefix(got, "refused (EROFS)") {
		t.Errorf("write into a read grant: %q, want refused (EROFS)", got)
	}
}

// TestGrantBelowAPrivateDirectory: a grant is bound from a descriptor the
// gateway opens, so it works below a directory the sandbox's uid cannot
// traverse (a 0700 parent, as mktemp makes them), at every level that
// mounts.
func TestGrantBelowAPrivateDirectory(t *testing.T) {
	needRoot(t, "the sandbox's uid is a host uid of its own only for a root gateway")
	private := t.TempDir() // 0700 below a 0700 directory
	grant := filepath.Join(private, "grant")
	if err := os.Mkdir(grant, 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(grant, "file")
	if err := os.WriteFile(file, []byte("readable"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, level := range []Isolation{IsolationFull, IsolationNoUserNS} {
		t.Run(string(level), func(t *testing.T) {
			if err := Probe().Offers(level); err != nil {
				t.Skipf("this host does not offer %s: %v", level, err)
			}
			spec := probeSpec(t, "weak", "CANARY="+file)
			spec.Isolation = level
			spec.Read = []string{grant}
			r := run(t, spec, 30*time.Second)
			if got := r.lines["read canary"]; got != "ALLOWED" {
				t.Errorf("read a granted file below a 0700 directory: %q\n%s%s", got, r.stdout, r.stderr)
			}
		})
	}
}
