// Command bare is the benchmark baseline: the demo MCP server served by the
// go-sdk Streamable HTTP handler with nothing in front of it, so that
// bench/run.sh can compare mcpgate against it.
//
// /legacy serves the 2025-11-25 era (stateful sessions); /modern serves the
// 2026-07-28 era (stateless), because the SDK fixes the era per handler.
//
// It prints "listening on http://ADDR" on stdout once it accepts connections.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/mcpgate/mcpgate/internal/demo"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address (port 0 picks a free port)")
	flag.Parse()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *addr, logger); err != nil {
		fmt.Fprintf(os.Stderr, "bare: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, addr string, logger *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	d := demo.New(logger)
	fmt.Printf("listening on http://%s\n", ln.Addr())
	// The demo's background work runs as it does inside mcpgate, so both
	// sides of the comparison carry it.
	return d.ServeListener(ctx, ln, newMux(d.Server()))
}

// newMux mounts one handler per era on the same server instance, as the SDK
// only accepts 2026-07-28 on a stateless handler.
func newMux(server *mcp.Server) *http.ServeMux {
	getServer := func(*http.Request) *mcp.Server { return server }
	mux := http.NewServeMux()
	mux.Handle("/legacy", mcp.NewStreamableHTTPHandler(getServer, &mcp.StreamableHTTPOptions{Stateless: false}))
	mux.Handle("/modern", mcp.NewStreamableHTTPHandler(getServer, &mcp.StreamableHTTPOptions{
		Stateless:                    true,
		PropagateRequestCancellation: true,
	}))
	return mux
}
