// Package bench holds mcpgate's out-of-process benchmarks: run.sh with its
// load generator (bench/loadgen) and baseline server (bench/bare), and the
// spawn benchmarks in this file.
package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/demo"
	"github.com/mcpgate/mcpgate/internal/sandbox"
)

// TestMain doubles as the sandboxes' init: a fully isolated child
// re-executes this test binary as "mcpgate-sandbox-init" (see
// sandbox.IsInit). It is also the gateway's built-in demo upstream, which
// gateway.BuiltinCommand runs as this very binary with the argument "demo".
func TestMain(m *testing.M) {
	if sandbox.IsInit() {
		sandbox.RunInit()
	}
	if len(os.Args) > 1 && os.Args[1] == "demo" {
		if err := demo.New(nil).ServeStdio(context.Background(), os.Stdin, os.Stdout); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// spawnTimeout bounds one spawn-to-initialized span; a server that takes
// longer fails the benchmark.
const spawnTimeout = 30 * time.Second

// exitGrace is how long a server may take to exit once its stdin is closed
// before it is killed.
const exitGrace = 5 * time.Second

// initializeLine is the MCP initialize request every spawn sends.
const initializeLine = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"mcpgate-bench","version":"0"}}}` + "\n"

// spawnVariant is one way of starting the same server.
type spawnVariant struct {
	name      string
	isolation sandbox.Isolation
	limits    sandbox.Limits
}

var (
	// plainVariant is insecure_no_sandbox: a plain child process.
	plainVariant = spawnVariant{name: "plain", isolation: sandbox.IsolationNone}
	// sandboxedVariant is the gateway's default: full isolation with the
	// default cgroup limits (memory and pids).
	sandboxedVariant = spawnVariant{name: "sandboxed", isolation: sandbox.IsolationFull}
	// nolimitsVariant is full isolation without a cgroup.
	nolimitsVariant = spawnVariant{name: "sandboxed-nolimits", isolation: sandbox.IsolationFull,
		limits: sandbox.Limits{MemoryBytes: -1, Pids: -1}}
)

// nodeServer is a node MCP server from interop/node_modules.
type nodeServer struct {
	node        string // absolute, symlinks resolved
	argv        []string
	nodeModules string // absolute interop/node_modules, the sandbox's read grant
}

// referenceServer locates node and the named reference server
// ("everything" or "memory") in interop/node_modules, or skips b. node is
// "20" for /usr/bin/node or "22" for the node interop/package.json pins.
func referenceServer(b *testing.B, node, server string) nodeServer {
	b.Helper()
	if err := sandbox.Probe().FullIsolation(); err != nil {
		b.Skipf("this host cannot run the sandbox: %v", err)
	}
	nm, err := filepath.Abs(filepath.Join("..", "interop", "node_modules"))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := os.Stat(nm); err != nil {
		b.Skipf("interop/node_modules is missing (run `cd interop && npm ci`): %v", err)
	}
	s := nodeServer{nodeModules: nm}
	switch node {
	case "20":
		s.node = "/usr/bin/node"
	case "22":
		s.node = filepath.Join(nm, ".bin", "node")
	default:
		b.Fatalf("unknown node %q", node)
	}
	// The server starts with an empty environment (no PATH): the command
	// is the node binary itself, by its real path (the sandbox binds it
	// there).
	if s.node, err = filepath.EvalSymlinks(s.node); err != nil {
		b.Skipf("node %s is missing: %v", node, err)
	}
	entry := filepath.Join(nm, "@modelcontextprotocol", "server-"+server, "dist", "index.js")
	if _, err := os.Stat(entry); err != nil {
		b.Skipf("server-%s is missing (run `cd interop && npm ci`): %v", server, err)
	}
	s.argv = []string{s.node, entry}
	if server == "everything" {
		s.argv = append(s.argv, "stdio")
	}
	return s
}

// spawnTimes is one spawn's spans, all from building the command.
type spawnTimes struct {
	started time.Duration // Child.Started returned: the tool is launched
	ready   time.Duration // the initialize response was read
}

// spawn starts s as v, sends initialize and returns the time from building
// the command to Child.Started returning and to reading the response with
// id 1. It then closes the server's stdin, waits for it to exit (killing it
// after exitGrace) and releases the sandbox; none of that is timed.
func spawn(s nodeServer, v spawnVariant) (spawnTimes, error) {
	ctx, cancel := context.WithTimeout(context.Background(), spawnTimeout)
	defer cancel()
	start := time.Now()
	child, err := sandbox.Command(sandbox.Spec{
		Name:      "bench-spawn",
		Argv:      s.argv,
		Env:       []string{}, // nothing from the host, for both variants
		Isolation: v.isolation,
		Read:      []string{s.nodeModules},
		Limits:    v.limits,
	})
	if err != nil {
		return spawnTimes{}, err
	}
	cmd := child.Cmd
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return spawnTimes{}, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return spawnTimes{}, err
	}
	stderr := &tailBuffer{max: 4096}
	cmd.Stderr = stderr
	// As the gateway starts it: from where the child is best born (inside
	// its cgroup, on cgroup v1).
	if err := child.Launch(cmd.Start); err != nil {
		child.Finish()
		return spawnTimes{}, err
	}
	var once sync.Once
	finish := func() {
		once.Do(func() {
			stdin.Close()
			t := time.AfterFunc(exitGrace, func() { _ = cmd.Process.Kill() })
			_ = cmd.Wait()
			t.Stop()
			child.Finish()
		})
	}
	defer finish()
	fail := func(err error) (spawnTimes, error) {
		_ = cmd.Process.Kill()
		finish()
		if tail := strings.TrimSpace(stderr.String()); tail != "" {
			err = fmt.Errorf("%w\nstderr: %s", err, tail)
		}
		return spawnTimes{}, err
	}
	if err := child.Started(ctx); err != nil {
		return fail(err)
	}
	times := spawnTimes{started: time.Since(start)}
	if _, err := io.WriteString(stdin, initializeLine); err != nil {
		return fail(fmt.Errorf("send initialize: %w", err))
	}
	if f, ok := stdout.(*os.File); ok {
		_ = f.SetReadDeadline(start.Add(spawnTimeout))
	}
	r := bufio.NewReader(stdout)
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			return fail(fmt.Errorf("read initialize response: %w", err))
		}
		var msg struct {
			ID     json.RawMessage `json:"id"`
			Result *struct {
				ProtocolVersion string `json:"protocolVersion"`
			} `json:"result"`
			Error json.RawMessage `json:"error"`
		}
		if json.Unmarshal(line, &msg) != nil || string(msg.ID) != "1" {
			continue // a notification or a log line
		}
		if msg.Result == nil || msg.Result.ProtocolVersion == "" {
			return fail(fmt.Errorf("initialize failed: %s", line))
		}
		times.ready = time.Since(start)
		finish()
		return times, nil
	}
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = t.buf[len(t.buf)-t.max:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// percentile is the p-th percentile (0 < p <= 100) of ds, nearest rank; ds
// need not be sorted.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := int(float64(len(s))*p/100+0.5) - 1
	return s[min(max(rank, 0), len(s)-1)]
}

// median is the 50th percentile, averaging the two middle values of an even
// count.
func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// diffs is a[i]-b[i] for every i both have.
func diffs(a, b []time.Duration) []time.Duration {
	d := make([]time.Duration, min(len(a), len(b)))
	for i := range d {
		d[i] = a[i] - b[i]
	}
	return d
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// BenchmarkSpawn measures spawn-to-initialized of server-everything on
// node 20: building the command, starting it, (sandboxed) the sandbox's
// setup, node's start and the answer to an MCP initialize request. Each
// sub-benchmark is one variant alone; BenchmarkSpawnPair compares them in
// one interleaved run, which is the figure to read.
//
//	plain               IsolationNone (insecure_no_sandbox)
//	sandboxed           full isolation with the default limits (a cgroup
//	                    with memory and pids), as the gateway runs it
//	sandboxed-nolimits  full isolation, memory and pids unlimited (no cgroup)
//
// ms/p50 and ms/p90 are over the iterations, started-ms/p50 is the median
// time until Child.Started returned (the sandbox is set up and node
// launched); ns/op is the mean spawn-to-initialized.
func BenchmarkSpawn(b *testing.B) {
	for _, v := range []spawnVariant{plainVariant, sandboxedVariant, nolimitsVariant} {
		b.Run(v.name, func(b *testing.B) {
			s := referenceServer(b, "20", "everything")
			// One unmeasured start warms the page cache.
			if _, err := spawn(s, v); err != nil {
				b.Fatalf("%s: %v", v.name, err)
			}
			var ready, started []time.Duration
			for b.Loop() {
				t, err := spawn(s, v)
				if err != nil {
					b.Fatalf("%s: %v", v.name, err)
				}
				ready = append(ready, t.ready)
				started = append(started, t.started)
			}
			b.ReportMetric(ms(median(ready)), "ms/p50")
			b.ReportMetric(ms(percentile(ready, 90)), "ms/p90")
			b.ReportMetric(ms(median(started)), "started-ms/p50")
		})
	}
}

// BenchmarkSpawnPair measures plain, sandboxed and sandboxed-nolimits (see
// BenchmarkSpawn) in one run: each iteration starts the server once in
// each variant, rotating which goes first, so that machine noise falls on
// all alike. It reports every variant's spawn-to-initialized median and
// 90th percentile (<variant>-ms/p50, <variant>-ms/p90), the median time
// until Child.Started returned (<variant>-started-ms/p50), the median the
// sandbox adds (added-ms/p50: the sandboxed median minus the plain median;
// added-nolimits-ms/p50 likewise), the median of the per-iteration
// differences sandboxed minus plain (added-paired-ms/p50, which cancels
// noise slower than one iteration) and sandboxed/plain, the ratio of the
// two medians. ns/op is one iteration: all three spawns, teardown included.
//
// Sub-benchmarks: node20-everything, node22-everything (the node
// interop/package.json pins) and node20-memory (server-memory).
func BenchmarkSpawnPair(b *testing.B) {
	for _, c := range []struct{ node, server string }{
		{"20", "everything"},
		{"22", "everything"},
		{"20", "memory"},
	} {
		b.Run("node"+c.node+"-"+c.server, func(b *testing.B) {
			s := referenceServer(b, c.node, c.server)
			variants := []spawnVariant{plainVariant, sandboxedVariant, nolimitsVariant}
			for _, v := range variants {
				if _, err := spawn(s, v); err != nil {
					b.Fatalf("%s: %v", v.name, err)
				}
			}
			ready := make([][]time.Duration, len(variants))
			started := make([][]time.Duration, len(variants))
			i := 0
			for b.Loop() {
				for k := range variants {
					j := (i + k) % len(variants)
					t, err := spawn(s, variants[j])
					if err != nil {
						b.Fatalf("%s: %v", variants[j].name, err)
					}
					ready[j] = append(ready[j], t.ready)
					started[j] = append(started[j], t.started)
				}
				i++
			}
			for j, v := range variants {
				b.ReportMetric(ms(median(ready[j])), v.name+"-ms/p50")
				b.ReportMetric(ms(percentile(ready[j], 90)), v.name+"-ms/p90")
				b.ReportMetric(ms(median(started[j])), v.name+"-started-ms/p50")
			}
			plain, full, nolim := median(ready[0]), median(ready[1]), median(ready[2])
			b.ReportMetric(ms(full-plain), "added-ms/p50")
			b.ReportMetric(ms(nolim-plain), "added-nolimits-ms/p50")
			b.ReportMetric(ms(median(diffs(ready[1], ready[0]))), "added-paired-ms/p50")
			if plain > 0 {
				b.ReportMetric(float64(full)/float64(plain), "sandboxed/plain")
			}
		})
	}
}

// TestPercentile checks the statistics the spawn benchmarks report.
func TestPercentile(t *testing.T) {
	ds := []time.Duration{5, 1, 4, 2, 3, 10, 9, 8, 7, 6}
	if got := median(ds); got != 5 { // (5+6)/2 in integer nanoseconds
		t.Errorf("median = %v, want 5", got)
	}
	if got := median(ds[:5]); got != 3 {
		t.Errorf("median of 5 = %v, want 3", got)
	}
	if got := percentile(ds, 90); got != 9 {
		t.Errorf("p90 = %v, want 9", got)
	}
	if got := percentile(nil, 50); got != 0 {
		t.Errorf("p50 of none = %v, want 0", got)
	}
}
