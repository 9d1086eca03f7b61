package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

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
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.Run(ctx)
	}()
	defer func() { cancel(); <-done }()
	srv := &http.Server{Handler: d.Handler(), ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(stdout, "demo MCP server on http://%s/mcp\n", ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	shutdown, stop := context.WithTimeout(context.Background(), 5*time.Second)
	defer stop()
	if err := srv.Shutdown(shutdown); err != nil {
		srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}
