package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"

	"github.com/mcpgate/mcpgate/internal/config"
	"github.com/mcpgate/mcpgate/internal/demo"
)

// demoCmd serves mcpgate's demo MCP server: over stdio by default (what an
// upstream with `builtin: demo` runs), or over Streamable HTTP on a loopback
// --listen address (both eras), to try mcpgate's remote upstreams.
func demoCmd(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("demo", stderr)
	listen := fs.String("listen", "", "serve Streamable HTTP on this loopback address instead of stdio")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	// stdout carries the protocol in stdio mode: logs go to stderr only.
	d := demo.New(slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if *listen == "" {
		return d.ServeStdio(ctx, stdin, stdout)
	}
	if !config.IsLoopbackAddress(*listen) {
		return fmt.Errorf("demo --listen %s: the demo server has no authentication; it listens on loopback only", *listen)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	fmt.Fprintf(stdout, "demo MCP server on http://%s/mcp\n", ln.Addr())
	return d.ServeListener(ctx, ln, d.Handler())
}
