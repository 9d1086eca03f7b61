package sandbox

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// oldRoot is where the host's root sits between pivot_root and its detach;
// every bind source is read through it.
const oldRoot = "/.oldroot"

// systemDirs are the host directories every sandbox sees read-only: the
// programs and libraries (usr-merged hosts have the others as symlinks into
// /usr, recreated as such).
var systemDirs = []string{"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"}

// etcFiles are the few /etc entries a runtime needs: the dynamic loader's
// cache, user and host name lookups, TLS roots, the time zone, and Debian's
// alternatives (/usr/bin/awk points there). Missing ones are skipped.
var etcFiles = []string{
	"/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d",
	"/etc/passwd", "/etc/group", "/etc/nsswitch.conf", "/etc/hosts",
	"/etc/ssl", "/etc/ca-certificates", "/etc/localtime", "/etc/alternatives",
}

// devices are bound from the host's /dev into the sandbox's tmpfs /dev.
var devices = []string{"null", "zero", "full", "random", "urandom", "tty"}

// buildRoot makes the sandbox's filesystem and pivots into it. It runs in
// the init, in a fresh mount namespace (asserted before), as the
// namespace's root. The order matters: /tmp is mounted before binds that
// live below it, and the root is made read-only last.
func buildRoot(cfg *initConfig) error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	// The host's mount points, read once: a bind must also remount the
	// mounts below its source.
	hostMounts, err := mountPoints("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	b := binder{hostMounts: hostMounts}
	// /tmp is world-traversable on every host, which the mapped host uid
	// needs to reach the new root's mount point.
	const base = "/tmp"
	if err := unix.Mount("tmpfs", base, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755,size=4m,nr_inodes=4096"); err != nil {
		return fmt.Errorf("mount root tmpfs: %w", err)
	}
	if err := os.Mkdir(base+oldRoot, 0o700); err != nil {
		return fmt.Errorf("create old root: %w", err)
	}
	if err := unix.PivotRoot(base, base+oldRoot); err != nil {
		return fmt.Errorf("pivot root: %w", err)
	}
	if err := os.Chdir("/"); err != nil {
		return fmt.Errorf("enter new root: %w", err)
	}
	if err := mountTmpfs("/tmp", "mode=1777"); err != nil {
		return err
	}
	for _, dir := range systemDirs {
		if err := b.bindSystem(dir); err != nil {
			return err
		}
	}
	for _, f := range etcFiles {
		if err := b.bindSystem(f); err != nil {
			return err
		}
	}
	binds := append([]bindMount(nil), cfg.Binds...)
	// Parents before children, so that a grant below another is mounted on
	// top of it rather than hidden by it.
	sort.SliceStable(binds, func(i, j int) bool { return binds[i].Dst < binds[j].Dst })
	for _, m := range binds {
		mode := uintptr(readOnly)
		if m.Write {
			mode = readWrite
		}
		// From the descriptor the gateway opened: the sandbox's uid may
		// not be able to traverse to Src (a 0700 directory on the way).
		src := oldRoot + "/proc/self/fd/" + strconv.Itoa(m.fd)
		if err := b.bindFrom(src, m.Src, m.Dst, mode); err != nil {
			return err
		}
		unix.Close(m.fd)
	}
	if err := b.buildDev(); err != nil {
		return err
	}
	if err := mountProc(cfg.Level == IsolationFull); err != nil {
		return err
	}
	if err := unix.Unmount(oldRoot, unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach old root: %w", err)
	}
	if err := os.Remove(oldRoot); err != nil {
		return fmt.Errorf("remove old root: %w", err)
	}
	if err := remount("/", readOnly); err != nil {
		return fmt.Errorf("make root read-only: %w", err)
	}
	return nil
}

func mountTmpfs(dst, opts string) error {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dst, err)
	}
	if err := unix.Mount("tmpfs", dst, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		return fmt.Errorf("mount tmpfs on %s: %w", dst, err)
	}
	return nil
}

// binder binds host paths into the new root.
type binder struct {
	hostMounts []string // the host's mount points, sorted
}

// bindSystem makes a host system path visible read-only at the same place:
// a symlink is recreated (its target is resolved inside the sandbox), a
// directory or file is bound. A path the host lacks is skipped.
func (b binder) bindSystem(path string) error {
	src := oldRoot + path
	fi, err := os.Lstat(src)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("inspect %s: %w", path, err)
	}
	if fi.Mode()&os.ModeSymlink != 0 {
		target, err := os.Readlink(src)
		if err != nil {
			return fmt.Errorf("read link %s: %w", path, err)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return fmt.Errorf("create %s: %w", filepath.Dir(path), err)
		}
		if err := os.Symlink(target, path); err != nil {
			return fmt.Errorf("link %s: %w", path, err)
		}
		return nil
	}
	return b.bind(path, path, readOnly)
}

// bind mounts the host's path src (seen under the old root) at dst
// (created as a file or directory to match), then gives dst and every
// mount below it mode (see remount).
func (b binder) bind(hostPath, dst string, mode uintptr) error {
	return b.bindFrom(oldRoot+hostPath, hostPath, dst, mode)
}

// bindFrom is bind with the source reached through src (a path under the
// old root, or a descriptor's magic link), hostPath naming it on the host.
func (b binder) bindFrom(src, hostPath, dst string, mode uintptr) error {
	fi, err := os.Stat(src)
	if err != nil {
		return fmt.Errorf("bind %s: %w", dst, err)
	}
	if fi.IsDir() {
		err = os.MkdirAll(dst, 0o755)
	} else {
		err = createFile(dst)
	}
	if err != nil {
		return fmt.Errorf("create mount point %s: %w", dst, err)
	}
	// Recursive: in a user namespace the host's mounts below src are locked
	// to it, and a non-recursive bind of them is refused.
	if err := unix.Mount(src, dst, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind %s: %w", dst, err)
	}
	if err := remount(dst, mode); err != nil {
		return fmt.Errorf("bind %s: %w", dst, err)
	}
	for _, m := range b.hostMounts {
		if rel, ok := strings.CutPrefix(m, strings.TrimSuffix(hostPath, "/")+"/"); ok {
			if err := remount(dst+"/"+rel, mode); err != nil {
				return fmt.Errorf("bind %s: %w", dst, err)
			}
		}
	}
	return nil
}

func createFile(path string) error {
	// An existing file is a mount point already, and may sit in a
	// read-only bind: the tool's executable inside a read grant.
	if fi, err := os.Lstat(path); err == nil && !fi.IsDir() {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	return f.Close()
}

// Mount modes for remount.
const (
	readOnly  = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_RDONLY
	readWrite = unix.MS_NOSUID | unix.MS_NODEV
	// device is for the few device nodes bound into /dev: nodev would make
	// them unusable.
	device = unix.MS_NOSUID | unix.MS_NOEXEC
)

// remount re-applies a mount's flags (mode, one of the above). Flags the kernel locked on the original (the host's own mount options,
// which a user namespace may not clear) are carried over, or the remount
// is refused.
func remount(path string, mode uintptr) error {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return fmt.Errorf("inspect mount %s: %w", path, err)
	}
	flags := unix.MS_BIND | unix.MS_REMOUNT | mode
	for _, f := range []struct{ st, ms uintptr }{
		{unix.ST_RDONLY, unix.MS_RDONLY},
		{unix.ST_NOEXEC, unix.MS_NOEXEC},
		{unix.ST_NOATIME, unix.MS_NOATIME},
		{unix.ST_NODIRATIME, unix.MS_NODIRATIME},
		{unix.ST_RELATIME, unix.MS_RELATIME},
	} {
		if uintptr(st.Flags)&f.st != 0 {
			flags |= f.ms
		}
	}
	if err := unix.Mount("", path, "", flags, ""); err != nil {
		return fmt.Errorf("remount %s: %w", path, err)
	}
	return nil
}

// mountPoints lists the mount points of a mountinfo file, sorted (parents
// first).
func mountPoints(mountinfo string) ([]string, error) {
	f, err := os.Open(mountinfo)
	if err != nil {
		return nil, fmt.Errorf("read mount table: %w", err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		out = append(out, unescapeMount(fields[4]))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read mount table: %w", err)
	}
	sort.Strings(out)
	return out, nil
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v byte
			ok := true
			for _, c := range s[i+1 : i+4] {
				if c < '0' || c > '7' {
					ok = false
					break
				}
				v = v*8 + byte(c-'0')
			}
			if ok {
				b.WriteByte(v)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// buildDev makes a minimal /dev: a tmpfs with the harmless host devices
// bound in, the usual fd symlinks, and a private /dev/shm.
func (b binder) buildDev() error {
	if err := mountTmpfs("/dev", "mode=0755"); err != nil {
		return err
	}
	for _, d := range devices {
		if _, err := os.Stat(oldRoot + "/dev/" + d); err != nil {
			continue
		}
		if err := b.bind("/dev/"+d, "/dev/"+d, device); err != nil {
			return err
		}
	}
	for name, target := range map[string]string{
		"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2",
	} {
		if err := os.Symlink(target, "/dev/"+name); err != nil {
			return fmt.Errorf("link /dev/%s: %w", name, err)
		}
	}
	if err := mountTmpfs("/dev/shm", "mode=1777"); err != nil {
		return err
	}
	return remount("/dev", readOnly)
}

// mountProc mounts the sandbox's own /proc (it sees only the sandbox's
// processes), turns off user namespace creation for everything inside (in
// the sandbox's own user namespace only, userns: without one the limit
// would be the host's), and makes the kernel tunables read-only.
func mountProc(userns bool) error {
	if err := os.MkdirAll("/proc", 0o755); err != nil {
		return fmt.Errorf("create /proc: %w", err)
	}
	if err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mount /proc: %w", err)
	}
	// A per-user-namespace limit: 0 refuses user namespaces below this one
	// whatever path the request takes (seccomp covers the syscalls too).
	if userns {
		if err := os.WriteFile("/proc/sys/user/max_user_namespaces", []byte("0\n"), 0); err != nil {
			return fmt.Errorf("disable nested user namespaces: %w", err)
		}
	}
	for _, p := range []string{"/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus"} {
		if _, err := os.Stat(p); err != nil {
			continue
		}
		if err := unix.Mount(p, p, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind %s: %w", p, err)
		}
		if err := remount(p, readOnly); err != nil {
			return err
		}
	}
	return nil
}
