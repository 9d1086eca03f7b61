package interop

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/sandbox"
)

// TestRun is `mcpgate run` as a desktop client launches it: the official
// TypeScript SDK clients (clients/upstream.mjs over StdioClientTransport, both
// SDK generations) spawn `mcpgate run --allow-write DIR -- node
// server-filesystem DIR`, list its tools under their own names, write a file
// into DIR and read it back, and see a read of /etc/hostname refused. The
// file on the host is owned by the sandbox's uid, not root: the write
// happened inside the sandbox. The audit log names the principal "local".
func TestRun(t *testing.T) {
	// Children start with an empty environment (no PATH): node by absolute
	// path, the package's code granted read-only.
	nodeAbs, err := filepath.EvalSymlinks(nodeBin)
	if err != nil {
		t.Fatalf("resolve node: %v", err)
	}
	entry, err := filepath.Abs(referenceServers["fs"])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(entry); err != nil {
		t.Fatalf("server-filesystem is not installed (%v): run `cd interop && npm ci`", err)
	}
	dir := sandboxWritableDir(t)
	state := t.TempDir() // run's default audit log goes to $XDG_STATE_HOME/mcpgate

	for _, era := range eras {
		argv := []string{"clients/upstream.mjs", "stdio", era, "", "fs", dir, "--",
			mcpgateBin, "run", "--name", "fs", "--allow-read", nodeModules(t), "--allow-write", dir, "--",
			nodeAbs, entry, dir}
		out, err := node(t, 2*time.Minute, []string{"XDG_STATE_HOME=" + state}, argv...)
		if err != nil {
			t.Fatalf("%s: node %s\nfailed: %v\nstdout: %s", era, strings.Join(argv, " "), err, out)
		}
		var r struct {
			Read           string `json:"read"`
			OutsideRefused bool   `json:"outsideRefused"`
		}
		if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &r); err != nil {
			t.Fatalf("%s: printed %q, not one JSON line: %v", era, out, err)
		}
		t.Logf("fs through mcpgate run (%s): %s", era, strings.TrimSpace(out))
		if !r.OutsideRefused {
			t.Errorf("%s: a read outside DIR was not refused", era)
		}

		path := filepath.Join(dir, fmt.Sprintf("interop-%s.txt", era))
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%s: the file written through mcpgate run is not on the host: %v", era, err)
		}
		if string(b) != r.Read {
			t.Errorf("%s: the host file holds %q; the client read back %q", era, b, r.Read)
		}
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		uid := st.Sys().(*syscall.Stat_t).Uid
		if os.Geteuid() == 0 {
			// Run by root, the sandbox maps its tool to an unprivileged
			// host uid in its own range: a root-owned file would mean no
			// sandbox.
			if uid == 0 || uid < sandbox.DefaultUIDBase {
				t.Errorf("%s: %s is owned by uid %d, want a sandbox uid (>= %d), not root", era, path, uid, sandbox.DefaultUIDBase)
			}
		} else if int(uid) != os.Geteuid() {
			t.Errorf("%s: %s is owned by uid %d, want %d (an unprivileged sandbox maps only its own user)", era, path, uid, os.Geteuid())
		}
	}

	logPath := filepath.Join(state, "mcpgate", "audit-run-fs.jsonl")
	b, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatalf("run's audit log: %v", err)
	}
	for _, want := range []string{
		`"principal":"local","roles":["local"],"auth_method":"local",`,
		`"method":"tools/call","name":"write_file","decision":"allow"`,
		`"method":"tools/call","name":"read_text_file","decision":"allow"`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("audit log lacks %s:\n%s", want, b)
		}
	}
	if strings.Contains(string(b), `"principal":"anonymous"`) {
		t.Errorf("audit log has an anonymous record:\n%s", b)
	}
}
