package interop

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/authn"
)

// The npm reference servers mcpgate spawns as stdio upstreams in these tests
// (pinned in package.json), by upstream name.
var referenceServers = map[string]string{
	"everything": "node_modules/@modelcontextprotocol/server-everything/dist/index.js",
	"fs":         "node_modules/@modelcontextprotocol/server-filesystem/dist/index.js",
	"memory":     "node_modules/@modelcontextprotocol/server-memory/dist/index.js",
}

// upstreamEnv is what the upstream tests share: a gateway that spawns the
// three reference servers, and one API key per principal.
type upstreamEnv struct {
	g     *gateway
	keys  map[string]string // principal id -> API key
	fsDir string            // the filesystem upstream's allowed directory
}

// startUpstreamGateway starts mcpgate with the everything, fs and memory
// upstreams and the API-key principals alice and bob.
func startUpstreamGateway(t *testing.T) *upstreamEnv {
	t.Helper()
	// Children start with an empty environment (no PATH), so the command is
	// the absolute node binary, not the packages' `#!/usr/bin/env node` bins.
	nodeAbs, err := filepath.EvalSymlinks(nodeBin)
	if err != nil {
		t.Fatalf("resolve node: %v", err)
	}
	entry := map[string]string{}
	for name, rel := range referenceServers {
		abs, err := filepath.Abs(rel)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(abs); err != nil {
			t.Fatalf("reference server %s is not installed (%v): run `cd interop && npm ci`", name, err)
		}
		entry[name] = abs
	}
	env := &upstreamEnv{keys: map[string]string{}, fsDir: sandboxWritableDir(t)}
	digests := map[string]string{}
	for _, id := range []string{"alice", "bob"} {
		env.keys[id], digests[id] = authn.NewKey()
	}
	env.g = startGateway(t, fmt.Sprintf(`
auth:
  api_keys:
    - {id: alice, sha256: %[1]q, roles: [user]}
    - {id: bob, sha256: %[2]q, roles: [user]}
upstreams:
  everything:
    command: [%[3]q, %[4]q, "stdio"]
    sandbox: {read: [%[7]q]}
  fs:
    command: [%[3]q, %[5]q, %[8]q]
    sandbox: {read: [%[7]q], write: [%[8]q]}
  memory:
    command: [%[3]q, %[6]q]
    env: {MEMORY_FILE_PATH: "${MCPGATE_INSTANCE_DIR}/memory.jsonl"}
    instances: per-principal
    sandbox: {read: [%[7]q]}
policy:
  rules:
    - {name: users-all, roles: [user], allow: {tools: ["*"], prompts: ["*"], resources: ["**"]}}
limits:
  per_principal: {rate: 1000, burst: 1000, concurrent: 64}
`, digests["alice"], digests["bob"], nodeAbs,
		entry["everything"], entry["fs"], entry["memory"],
		nodeModules(t), env.fsDir))
	return env
}

// nodeModules is the absolute interop/node_modules: the reference servers'
// code, which their sandboxes get read-only.
func nodeModules(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("node_modules")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// sandboxWritableDir makes a directory a sandboxed server may write: its
// parents traversable by the sandbox's uid (t.TempDir's are not), itself
// writable by it. server-filesystem resolves symlinks in its allowed
// directories, so the path is the real one.
func sandboxWritableDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "mcpgate-interop-fs-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if dir, err = filepath.EvalSymlinks(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// upstreamResult is what clients/upstream.mjs prints (the fields the tests
// look at; the whole line is logged).
type upstreamResult struct {
	Scenario        string   `json:"scenario"`
	Era             string   `json:"era"`
	NegotiatedEra   string   `json:"negotiatedEra"`
	ProtocolVersion string   `json:"protocolVersion"`
	SessionID       string   `json:"sessionId"`
	Tools           []string `json:"tools"`
	Echo            string   `json:"echo"`
	Prompts         []string `json:"prompts"`
	Progress        []any    `json:"progress"`
	Cancel          *struct {
		RejectedAfterMs int    `json:"rejectedAfterMs"`
		Error           string `json:"error"`
	} `json:"cancel"`
	EchoAfterCancel string   `json:"echoAfterCancel"`
	Sampling        string   `json:"sampling"`
	Read            string   `json:"read"`
	Entities        []string `json:"entities"`
}

// runUpstreamScript runs clients/upstream.mjs as principal against the
// gateway and fails the test, with the script's stderr and the gateway log,
// if it exits non-zero or prints something that is not its result line.
func (e *upstreamEnv) runUpstreamScript(t *testing.T, principal, era, prefix, scenario string, args ...string) upstreamResult {
	t.Helper()
	argv := append([]string{"clients/upstream.mjs", e.g.URL, era, prefix, scenario}, args...)
	what := fmt.Sprintf("%s as %s: node %s", scenario, principal, strings.Join(argv, " "))
	out, err := node(t, 2*time.Minute, []string{"MCPGATE_KEY=" + e.keys[principal]}, argv...)
	if err != nil {
		t.Fatalf("%s\nfailed: %v\nstdout: %s\nmcpgate log (tail):\n%s", what, err, out, e.g.logTail(60))
	}
	var r upstreamResult
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &r); err != nil {
		t.Fatalf("%s\nprinted %q, not one JSON line: %v\nmcpgate log (tail):\n%s", what, out, err, e.g.logTail(60))
	}
	t.Logf("%s as %s (%s): %s", scenario, principal, era, strings.TrimSpace(out))
	return r
}

// checkEra fails unless the script's client negotiated the era it asked for.
func checkEra(t *testing.T, era string, r upstreamResult) {
	t.Helper()
	switch era {
	case "legacy":
		if r.ProtocolVersion != "2025-11-25" || r.SessionID == "" {
			t.Errorf("legacy client negotiated %q with session %q, want 2025-11-25 with a session", r.ProtocolVersion, r.SessionID)
		}
	case "modern":
		if r.NegotiatedEra != "modern" {
			t.Errorf("client v2 pinned to 2026-07-28 negotiated era %q, want modern", r.NegotiatedEra)
		}
	}
}

var eras = []string{"legacy", "modern"}

// TestUpstreamEverything proxies server-everything (a legacy-era stdio
// server) to clients of both eras: namespaced tools, prompts and resources,
// progress notifications and cancellation. The script checks each step and
// fails with the reason; see clients/upstream.mjs.
func TestUpstreamEverything(t *testing.T) {
	e := startUpstreamGateway(t)
	for _, era := range eras {
		t.Run(era, func(t *testing.T) {
			r := e.runUpstreamScript(t, "alice", era, "everything.", "everything")
			checkEra(t, era, r)
			for _, want := range []string{"everything.echo", "everything.get-sum", "everything.trigger-long-running-operation"} {
				if !slices.Contains(r.Tools, want) {
					t.Errorf("tools/list = %v, want %s among them", r.Tools, want)
				}
			}
			if !slices.Contains(r.Prompts, "everything.simple-prompt") {
				t.Errorf("prompts/list = %v, want everything.simple-prompt among them", r.Prompts)
			}
			if len(r.Progress) == 0 {
				t.Error("no progress notification reached the client")
			}
			if r.Cancel == nil || r.EchoAfterCancel == "" {
				t.Errorf("cancellation step incomplete: cancel=%+v echoAfterCancel=%q", r.Cancel, r.EchoAfterCancel)
			}
		})
	}
}

// TestUpstreamFilesystem proxies server-filesystem restricted to a temporary
// directory: a file written through mcpgate is on disk, reads back, is listed,
// and a path outside the directory is refused.
func TestUpstreamFilesystem(t *testing.T) {
	e := startUpstreamGateway(t)
	for _, era := range eras {
		t.Run(era, func(t *testing.T) {
			r := e.runUpstreamScript(t, "alice", era, "fs.", "fs", e.fsDir)
			checkEra(t, era, r)
			path := filepath.Join(e.fsDir, "interop-"+era+".txt")
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("the file written through mcpgate is not on disk: %v", err)
			}
			if string(b) != r.Read {
				t.Errorf("%s holds %q, but read_text_file returned %q", path, b, r.Read)
			}
		})
	}
}

// TestUpstreamSamplingRelayed: server-everything (a legacy-era server) asks
// its client to sample in the middle of trigger-sampling-request. Its client
// is mcpgate, which relays the request to the legacy client whose call it is
// and the answer back into the call.
func TestUpstreamSamplingRelayed(t *testing.T) {
	e := startUpstreamGateway(t)
	r := e.runUpstreamScript(t, "alice", "legacy", "everything.", "sampling")
	if !strings.Contains(r.Sampling, "sampled by interop") {
		t.Fatalf("trigger-sampling-request answered %q, want this client's sampling answer in it", r.Sampling)
	}
}

// TestUpstreamPerPrincipalMemory runs server-memory with instances:
// per-principal: alice and bob must each get their own child process, and
// each reads back only its own graph. server-memory keeps its graph in the
// file MEMORY_FILE_PATH names, so the config points it into the instance's
// private state directory (${MCPGATE_INSTANCE_DIR}), one per principal.
func TestUpstreamPerPrincipalMemory(t *testing.T) {
	e := startUpstreamGateway(t)
	procs := watchProcesses(t, e.g.cmd.Process.Pid, "server-memory/dist/index.js")

	start := time.Now()
	e.runUpstreamScript(t, "alice", "legacy", "memory.", "memory-write", "alice-note")
	aliceProcs := procs.startedSince(start)
	start = time.Now()
	e.runUpstreamScript(t, "bob", "legacy", "memory.", "memory-write", "bob-note")
	bobProcs := procs.startedSince(start)
	aliceRead := e.runUpstreamScript(t, "alice", "modern", "memory.", "memory-read")
	bobRead := e.runUpstreamScript(t, "bob", "modern", "memory.", "memory-read")

	if procs.supported {
		t.Logf("server-memory processes under mcpgate: started for alice %v, for bob %v", aliceProcs, bobProcs)
		if len(aliceProcs) == 0 {
			t.Errorf("no server-memory process was started under mcpgate (pid %d) while alice wrote", e.g.cmd.Process.Pid)
		}
		if len(bobProcs) == 0 {
			t.Errorf("no new server-memory process was started while bob wrote: bob was served by alice's instance %v, want one instance per principal", aliceProcs)
		}
	} else {
		t.Logf("process isolation not checked: no /proc on %s", runtime.GOOS)
	}

	if !slices.Contains(aliceRead.Entities, "alice-note") {
		t.Errorf("alice's read_graph = %v, want alice-note in it", aliceRead.Entities)
	}
	if !slices.Contains(bobRead.Entities, "bob-note") {
		t.Errorf("bob's read_graph = %v, want bob-note in it", bobRead.Entities)
	}
	if slices.Contains(aliceRead.Entities, "bob-note") || slices.Contains(bobRead.Entities, "alice-note") {
		t.Errorf("the principals see each other's entities (alice: %v, bob: %v): per-principal instances must not share a graph", aliceRead.Entities, bobRead.Entities)
	}
}

// processWatch samples, every 20 ms until the test ends, the descendants of
// one process whose command line contains a string, and remembers when each
// was first seen. It needs Linux's /proc.
type processWatch struct {
	supported bool
	mu        sync.Mutex
	firstSeen map[int]time.Time
}

func watchProcesses(t *testing.T, root int, cmdlineContains string) *processWatch {
	t.Helper()
	w := &processWatch{firstSeen: map[int]time.Time{}}
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		return w
	}
	w.supported = true
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			now := time.Now()
			for _, pid := range descendants(root) {
				cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
				if err != nil || !strings.Contains(string(cmdline), cmdlineContains) {
					continue
				}
				w.mu.Lock()
				if _, ok := w.firstSeen[pid]; !ok {
					w.firstSeen[pid] = now
				}
				w.mu.Unlock()
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-done })
	return w
}

// startedSince returns the watched processes first seen at or after start.
func (w *processWatch) startedSince(start time.Time) []int {
	w.mu.Lock()
	defer w.mu.Unlock()
	var pids []int
	for pid, seen := range w.firstSeen {
		if !seen.Before(start) {
			pids = append(pids, pid)
		}
	}
	slices.Sort(pids)
	return pids
}

// descendants lists the processes below root, from /proc/<pid>/stat.
func descendants(root int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	children := map[int][]int{}
	for _, ent := range entries {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", ent.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may contain spaces and parentheses.
		rest := string(stat)
		if i := strings.LastIndexByte(rest, ')'); i >= 0 {
			rest = rest[i+1:]
		}
		f := strings.Fields(rest)
		if len(f) < 2 {
			continue
		}
		ppid, err := strconv.Atoi(f[1])
		if err != nil {
			continue
		}
		children[ppid] = append(children[ppid], pid)
	}
	var out []int
	queue := []int{root}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}
