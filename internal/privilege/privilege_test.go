package privilege

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// dropEnv makes the test binary a child that drops to the named user,
// reports its verified credentials and exits (a drop cannot be undone, so
// it never happens in the test process itself).
const dropEnv = "MCPGATE_PRIVILEGE_TEST_DROP"

func TestMain(m *testing.M) {
	if spec := os.Getenv(dropEnv); spec != "" {
		os.Exit(dropChild(spec))
	}
	os.Exit(m.Run())
}

// dropChild drops with several OS threads alive, each locked by a goroutine,
// so that a drop reaching only the calling thread would be caught.
func dropChild(spec string) int {
	var ready, release sync.WaitGroup
	release.Add(1)
	for range 4 {
		ready.Add(1)
		go func() {
			runtime.LockOSThread()
			ready.Done()
			release.Wait()
		}()
	}
	ready.Wait()
	defer release.Done()
	t, err := Lookup(spec)
	if err != nil {
		fmt.Println("lookup:", err)
		return 1
	}
	if err := Drop(t); err != nil {
		fmt.Println("drop:", err)
		return 1
	}
	threads, _ := os.ReadDir("/proc/self/task")
	// An independent look: the process can no longer open what only root may.
	_, shadowErr := os.ReadFile("/etc/shadow")
	fmt.Printf("dropped uid=%d gid=%d threads=%d shadow=%v\n", os.Getuid(), os.Getgid(), len(threads), shadowErr != nil)
	return 0
}

func TestLookup(t *testing.T) {
	for _, tc := range []struct {
		spec      string
		uid, gid  int
		wantError string
	}{
		{spec: "nobody", uid: 65534, gid: 65534},
		{spec: "65534", uid: 65534, gid: 65534},
		{spec: "nobody:nogroup", uid: 65534, gid: 65534},
		{spec: "nobody:65534", uid: 65534, gid: 65534},
		{spec: "root", wantError: "dropping to root is no drop"},
		{spec: "0", wantError: "dropping to root is no drop"},
		{spec: "nobody:root", wantError: "dropping to root is no drop"},
		{spec: "", wantError: "want USER or USER:GROUP"},
		{spec: "nobody:", wantError: "want USER or USER:GROUP"},
		{spec: ":nogroup", wantError: "want USER or USER:GROUP"},
		{spec: "no-such-user-mcpgate", wantError: `look up run_as user "no-such-user-mcpgate"`},
		{spec: "nobody:no-such-group-mcpgate", wantError: `look up run_as group "no-such-group-mcpgate"`},
	} {
		t.Run(tc.spec, func(t *testing.T) {
			got, err := Lookup(tc.spec)
			if tc.wantError != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantError) {
					t.Fatalf("Lookup(%q) = %+v, %v; want error containing %q", tc.spec, got, err, tc.wantError)
				}
				return
			}
			if err != nil || got.UID != tc.uid || got.GID != tc.gid || len(got.Groups) == 0 {
				t.Fatalf("Lookup(%q) = %+v, %v; want uid %d gid %d", tc.spec, got, err, tc.uid, tc.gid)
			}
		})
	}
}

const goodStatus = "Name:\tmcpgate\nUid:\t65534\t65534\t65534\t65534\nGid:\t65534\t65534\t65534\t65534\n" +
	"Groups:\t65534 \nCapInh:\t0000000000000000\nCapPrm:\t0000000000000000\nCapEff:\t0000000000000000\n" +
	"CapBnd:\t000001ffffffffff\nCapAmb:\t0000000000000000\n"

func TestCheckStatus(t *testing.T) {
	nobody := Target{Name: "nobody", UID: 65534, GID: 65534, Groups: []int{65534}}
	for _, tc := range []struct {
		name, status, wantError string
	}{
		{"dropped", goodStatus, ""},
		{"saved uid kept", strings.Replace(goodStatus, "Uid:\t65534\t65534\t65534\t65534", "Uid:\t65534\t65534\t0\t65534", 1), "Uid is"},
		{"fs uid kept", strings.Replace(goodStatus, "Uid:\t65534\t65534\t65534\t65534", "Uid:\t65534\t65534\t65534\t0", 1), "Uid is"},
		{"gid kept", strings.Replace(goodStatus, "Gid:\t65534\t65534\t65534\t65534", "Gid:\t0\t65534\t65534\t65534", 1), "Gid is"},
		{"root group kept", strings.Replace(goodStatus, "Groups:\t65534 ", "Groups:\t0 65534", 1), "supplementary group 0"},
		{"capability kept", strings.Replace(goodStatus, "CapEff:\t0000000000000000", "CapEff:\t0000000000000400", 1), "CapEff is"},
		{"ambient kept", strings.Replace(goodStatus, "CapAmb:\t0000000000000000", "CapAmb:\t0000000000000001", 1), "CapAmb is"},
		{"line missing", strings.Replace(goodStatus, "CapPrm:\t0000000000000000\n", "", 1), "status lacks [CapPrm]"},
		{"short uid line", strings.Replace(goodStatus, "Uid:\t65534\t65534\t65534\t65534", "Uid:\t65534", 1), "Uid is"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkStatus(tc.status, nobody)
			if tc.wantError == "" {
				if err != nil {
					t.Fatalf("checkStatus: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantError) {
				t.Fatalf("checkStatus = %v, want error containing %q", err, tc.wantError)
			}
		})
	}
}

// TestDrop runs the real drop in a child process as root: every thread ends
// as nobody, and the child can no longer read a root-only file.
func TestDrop(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("dropping privileges needs root (CI runs as root)")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), dropEnv+"=nobody")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`dropped uid=65534 gid=65534 threads=(\d+) shadow=true`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("child output %q: want uid and gid 65534 and /etc/shadow unreadable", out)
	}
	if bytes.Equal(m[1], []byte("1")) {
		t.Fatalf("child had one thread: the all-threads drop was not exercised (%q)", out)
	}
}

// TestDropRefusedWithoutRoot: a process that is not root cannot switch user,
// and says so rather than pretending.
func TestDropRefusedWithoutRoot(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("this process is root; the refusal is for unprivileged processes")
	}
	err := Drop(Target{Name: "nobody", UID: 65534, GID: 65534, Groups: []int{65534}})
	if err == nil || !strings.Contains(err.Error(), ErrNotRoot.Error()) {
		t.Fatalf("Drop as uid %d = %v, want ErrNotRoot", os.Geteuid(), err)
	}
}

// FuzzCheckStatus: whatever the text, an accepted status has the four uids
// and gids of the target and empty permitted, effective and ambient sets.
func FuzzCheckStatus(f *testing.F) {
	f.Add(goodStatus)
	f.Add(strings.Replace(goodStatus, "CapEff:\t0000000000000000", "CapEff:\t1", 1))
	f.Add("Uid: 1 1 1 1\nGid: 1 1 1 1\nGroups:\nCapPrm: 0\nCapEff: 0\nCapAmb: 0\n")
	target := Target{Name: "x", UID: 65534, GID: 65534, Groups: []int{65534}}
	uid := regexp.MustCompile(`(?m)^\s*Uid:\s*65534\s+65534\s+65534\s+65534\s*$`)
	capRE := regexp.MustCompile(`(?m)^\s*(CapPrm|CapEff|CapAmb):\s*([0-9a-fA-F]+)\s*$`)
	f.Fuzz(func(t *testing.T, status string) {
		if checkStatus(status, target) != nil {
			return
		}
		if !uid.MatchString(status) {
			t.Fatalf("accepted a status without the target's uids: %q", status)
		}
		for _, m := range capRE.FindAllStringSubmatch(status, -1) {
			if strings.Trim(m[2], "0") != "" {
				t.Fatalf("accepted %s %s: %q", m[1], m[2], status)
			}
		}
	})
}
