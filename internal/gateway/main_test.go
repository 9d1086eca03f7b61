package gateway

import (
	"context"
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/mcpgate/mcpgate/internal/demo"
	"github.com/mcpgate/mcpgate/internal/sandbox"
)

// TestMain doubles as the sandboxes' init (see sandbox.IsInit) and as the
// upstream children the tests' gateways start: the
// built-in demo (BuiltinCommand re-executes this test binary as
// "<binary> demo"), the test server ("<binary> testserver", see
// upstream_test.go) and the subscription server ("<binary> subserver", see
// subscribe_test.go). Otherwise it runs the tests and fails the package if
// any goroutine outlives them: every gateway, listener and limiter a test
// starts must be stopped by it.
//
// One goroutine is known to outlive a test and is ignored by its top
// function: the go-sdk's read loop of a legacy (stateful) session,
// (*streamableServerConn).Read, blocked waiting for the session's next
// message. A legacy session lives until the client DELETEs it or
// listen.session_idle_timeout (30m) closes it, and go-sdk v1.8.0 exports no
// way to close every session of a StreamableHTTPHandler (its closeAll is
// unexported), so the sessions the legacy tests open are still idle when the
// package ends. Nothing else is ignored.
func TestMain(m *testing.M) {
	if sandbox.IsInit() {
		sandbox.RunInit()
	}
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "demo":
			if err := demo.New(nil).ServeStdio(context.Background(), os.Stdin, os.Stdout); err != nil {
				os.Exit(1)
			}
			os.Exit(0)
		case "testserver":
			os.Exit(runTestServer())
		case "subserver":
			os.Exit(runSubscriptionServer())
		}
	}
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("github.com/modelcontextprotocol/go-sdk/mcp.(*streamableServerConn).Read"),
	)
}
