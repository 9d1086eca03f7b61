package gateway

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpgate/mcpgate/internal/config"
)

// runTestServer is the test upstream, run as a child of the gateway under
// test: a stdio MCP server whose tools let a test watch what reaches a real
// child process. It writes marker files into $MARKERS:
//
//	block  writes "started", then waits until its call is cancelled and
//	       writes "cancelled"
//	crash  exits the process mid-call (exit status 3)
//	pid    answers with the child's process id
func runTestServer() int {
	markers := os.Getenv("MARKERS")
	mark := func(name string) { os.WriteFile(filepath.Join(markers, name), nil, 0o600) }
	s := mcp.NewServer(&mcp.Implementation{Name: "testserver", Version: "1"}, nil)
	object := json.RawMessage(`{"type":"object"}`)
	s.AddTool(&mcp.Tool{Name: "block", InputSchema: object}, func(ctx context.Context, _ *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		mark("started")
		<-ctx.Done()
		mark("cancelled")
		return nil, ctx.Err()
	})
	s.AddTool(&mcp.Tool{Name: "crash", InputSchema: object}, func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		os.Exit(3)
		return nil, nil
	})
	s.AddTool(&mcp.Tool{Name: "pid", InputSchema: object}, func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: strconv.Itoa(os.Getpid())}}}, nil
	})
	if err := s.Run(context.Background(), &mcp.StdioTransport{}); err != nil {
		return 1
	}
	return 0
}

// withTestServer adds the test server as upstream "t" (names unprefixed)
// and returns the directory its marker files appear in.
func withTestServer(t testing.TB, c *config.Config) (markers string) {
	markers = t.TempDir()
	none := ""
	c.Upstreams["t"] = config.Upstream{
		Command:           []string{os.Args[0], "testserver"},
		Env:               map[string]config.Value{"MARKERS": {Literal: markers}},
		Namespace:         &none,
		InsecureNoSandbox: true,
		Start:             config.StartBoot,
		Instances:         config.InstancesShared,
		MaxInstances:      config.DefaultMaxInstances,
		IdleTimeout:       config.DefaultUpstreamIdleTimeout,
		CallTimeout:       config.DefaultCallTimeout,
	}
	return markers
}

// awaitMarker closes the returned channel when the test server writes the
// marker file name; the poll gives up when ctx ends.
func awaitMarker(ctx context.Context, markers, name string) chan struct{} {
	ch := make(chan struct{})
	go func() {
		for ctx.Err() == nil {
			if _, err := os.Stat(filepath.Join(markers, name)); err == nil {
				close(ch)
				return
			}
			select {
			case <-ctx.Done():
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	return ch
}
