package interop

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/authn"
)

// drainGateway starts mcpgate with server-everything as its one upstream.
// The child's environment carries a marker unique to the test, so that any
// process it leaves behind can be found in /proc.
func drainGateway(t *testing.T) (g *gateway, key, marker string) {
	t.Helper()
	if _, err := os.Stat("/proc/self/environ"); err != nil {
		t.Skip("needs /proc to look for left-over children")
	}
	marker = "drain-" + rand.Text()
	key, digest := authn.NewKey()
	nodeAbs, err := filepath.EvalSymlinks("node_modules/.bin/node")
	if err != nil {
		t.Fatal(err)
	}
	entry, _ := filepath.Abs("node_modules/@modelcontextprotocol/server-everything/dist/index.js")
	g = startGateway(t, fmt.Sprintf(`
auth:
  api_keys: [{id: alice, sha256: %q, roles: [user]}]
upstreams:
  everything:
    command: [%q, %q, stdio]
    env: {MCPGATE_TEST_RUN: %q}
    sandbox: {read: [%q]}
policy:
  rules: [{name: all, roles: [user], allow: {tools: ["*"]}}]
`, digest, nodeAbs, entry, marker, nodeModules(t)))
	// The listener accepts before the upstreams have booted (a connection
	// waits in its backlog): one call that completes shows the gateway
	// serving and its child up, before the test signals anything.
	if status, body, err := longCall(g, key, 0); err != nil || status != http.StatusOK || !strings.Contains(body, "completed") {
		t.Fatalf("first call: %d %v %s", status, err, body)
	}
	return g, key, marker
}

// longCall calls everything.trigger-long-running-operation for seconds and
// returns the HTTP status and body (or the error).
func longCall(g *gateway, key string, seconds int) (int, string, error) {
	body := fmt.Sprintf(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"everything.trigger-long-running-operation","arguments":{"duration":%d,"steps":1},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}`, seconds)
	req, _ := http.NewRequest(http.MethodPost, g.URL, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("MCP-Protocol-Version", "2026-07-28")
	req.Header.Set("Mcp-Method", "tools/call")
	req.Header.Set("Mcp-Name", "everything.trigger-long-running-operation")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// leftovers lists the processes whose environment holds marker.
func leftovers(marker string) []string {
	var found []string
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		env, err := os.ReadFile(filepath.Join(d, "environ"))
		if err == nil && bytes.Contains(env, []byte(marker)) {
			found = append(found, filepath.Base(d))
		}
	}
	return found
}

// TestDrainOnSIGTERM: SIGTERM while two long calls run. Both complete (they
// are within the grace period), mcpgate exits 0, and no child is left.
func TestDrainOnSIGTERM(t *testing.T) {
	g, key, marker := drainGateway(t)
	if len(leftovers(marker)) == 0 {
		t.Fatal("the upstream child is not running: the leftover check would prove nothing")
	}
	type answer struct {
		status int
		body   string
		err    error
	}
	answers := make([]answer, 2)
	var wg sync.WaitGroup
	for i := range answers {
		wg.Go(func() {
			s, b, err := longCall(g, key, 2)
			answers[i] = answer{s, b, err}
		})
	}
	time.Sleep(500 * time.Millisecond)
	g.signal(t, syscall.SIGTERM)
	wg.Wait()
	for i, a := range answers {
		if a.err != nil || a.status != http.StatusOK || !strings.Contains(a.body, "completed") {
			t.Errorf("call %d during the drain: %d %v %s; want it completed", i, a.status, a.err, a.body)
		}
	}
	if err := g.wait(t, 20*time.Second); err != nil {
		t.Errorf("mcpgate exit after SIGTERM: %v, want 0\n%s", err, g.logTail(30))
	}
	if left := leftovers(marker); len(left) > 0 {
		t.Errorf("processes left after the drain: %v", left)
	}
}

// TestSecondSignalExitsAtOnce: a second SIGTERM during the drain ends mcpgate
// at once, and its children die with it.
func TestSecondSignalExitsAtOnce(t *testing.T) {
	g, key, marker := drainGateway(t)
	go longCall(g, key, 30) // cut short by the exit: its answer does not matter
	time.Sleep(500 * time.Millisecond)
	g.signal(t, syscall.SIGTERM)
	time.Sleep(300 * time.Millisecond)
	g.signal(t, syscall.SIGTERM)
	start := time.Now()
	err := g.wait(t, 5*time.Second)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 130 {
		t.Errorf("exit after a second signal: %v, want status 130", err)
	}
	t.Logf("exited %s after the second signal", time.Since(start).Round(time.Millisecond))
	deadline := time.Now().Add(3 * time.Second)
	for len(leftovers(marker)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("children outlived mcpgate: %v", leftovers(marker))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
