// Package demo is mcpgate's own demo MCP tool server. It serves a benchmark
// tool (echo) next to the fixture surface the official MCP conformance suite
// expects (tools, resources, templates, prompts and completions named
// test_*/test://*), so the gateway can be exercised end to end without an
// external upstream.
//
// One *mcp.Server serves both protocol eras at once. Every handler that needs
// input from the client is written in the 2026-07-28 multi round-trip style
// (it returns InputRequests, with a sealed requestState where it needs one);
// the SDK's server middleware fulfils those requests over the legacy session
// for 2025-11-25 clients and re-invokes the handler, so no handler ever sends
// the client a request of its own.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpgate/mcpgate/internal/logs"
	"github.com/mcpgate/mcpgate/internal/sealed"
	"github.com/mcpgate/mcpgate/internal/strictjson"
	"github.com/mcpgate/mcpgate/internal/transport"
)

const (
	serverName    = "mcpgate-demo"
	serverTitle   = "mcpgate demo server"
	serverVersion = "1.0.0"

	serverInstructions = "Demo MCP server bundled with mcpgate. " +
		"Call echo for a trivial round trip; the test_* tools, test:// resources " +
		"and prompts form the MCP conformance fixture."

	// watchedUpdateInterval is how often Run announces a change to
	// watchedResourceURI; the conformance fixture documents three seconds.
	watchedUpdateInterval = 3 * time.Second

	// sdkLogLevel is the lowest level of the SDK's own log records that
	// reaches the gateway log. The SDK logs every resource-updated
	// notification at Info, which would flood the log every few seconds.
	sdkLogLevel = slog.LevelWarn

	// stateDomain separates the demo's requestState tags from any other use
	// of a sealing key.
	stateDomain = "mcpgate/demo/requestState/v1"
)

// Demo owns the demo MCP server and the secrets and counters its handlers
// share.
type Demo struct {
	server *mcp.Server
	logger *slog.Logger
	states *sealed.Sealer

	// updateInterval is how often Run announces a watched-resource change.
	updateInterval time.Duration

	// watchedRevision counts the updates Run has announced for the watched
	// resource, so a re-read after a notification returns new content.
	watchedRevision atomic.Int64
}

// New builds the demo server with every tool, resource, resource template,
// prompt and the completion handler registered. A nil logger discards logs.
func New(logger *slog.Logger) *Demo {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	d := &Demo{
		logger:         logger,
		states:         sealed.New(stateDomain, time.Now),
		updateInterval: watchedUpdateInterval,
	}
	d.server = mcp.NewServer(&mcp.Implementation{
		Name:    serverName,
		Title:   serverTitle,
		Version: serverVersion,
	}, &mcp.ServerOptions{
		Instructions:       serverInstructions,
		Logger:             slog.New(logs.MinLevel(logger.Handler(), sdkLogLevel)),
		Capabilities:       serverCapabilities(),
		CompletionHandler:  d.complete,
		SubscribeHandler:   d.subscribe,
		UnsubscribeHandler: d.unsubscribe,
	})
	d.registerTools()
	d.registerResources()
	d.registerPrompts()
	return d
}

// Server returns the MCP server. The same instance may be served by several
// transports (stateful and stateless streamable HTTP) at once.
func (d *Demo) Server() *mcp.Server { return d.server }

// Run does the server's background work until ctx is done: it announces a
// change to the watched resource every few seconds, to sessions
// subscribed through resources/subscribe (2025-11-25) or subscriptions/listen
// (2026-07-28). It starts no goroutines of its own.
func (d *Demo) Run(ctx context.Context) {
	ticker := time.NewTicker(d.updateInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			d.announceWatchedUpdate(ctx)
		}
	}
}

// announceWatchedUpdate bumps the watched resource's revision and notifies
// its subscribers.
func (d *Demo) announceWatchedUpdate(ctx context.Context) {
	d.watchedRevision.Add(1)
	err := d.server.ResourceUpdated(ctx, &mcp.ResourceUpdatedNotificationParams{URI: watchedResourceURI})
	if err != nil && ctx.Err() == nil {
		d.logger.Warn("demo: notify watched resource update", "err", fmt.Errorf("notify resource update: %w", err))
	}
}

// serverCapabilities lists the capabilities the server advertises up front;
// tools, prompts, resources (with subscribe) and completions are inferred by
// the SDK from what New registers.
func serverCapabilities() *mcp.ServerCapabilities {
	return &mcp.ServerCapabilities{
		// Legacy clients call logging/setLevel and expect log notifications
		// from test_tool_with_logging.
		//lint:ignore SA1019 logging is deprecated in 2026-07-28 but still required by 2025-11-25 clients.
		Logging: &mcp.LoggingCapabilities{},
	}
}

// ServeStdio serves the demo over r and w (a child's stdin and stdout) until
// r ends or ctx is done, with the watched-resource updates running beside it.
// It is what `mcpgate demo` (the built-in upstream) runs.
func (d *Demo) ServeStdio(ctx context.Context, r io.Reader, w io.Writer) error {
	return d.withUpdates(ctx, func(ctx context.Context) error {
		err := d.server.Run(ctx, &mcp.IOTransport{Reader: io.NopCloser(r), Writer: nopCloser{w}})
		if err != nil && ctx.Err() == nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("serve demo over stdio: %w", err)
		}
		return nil
	})
}

// withUpdates runs serve with Run beside it, and stops Run when serve returns.
func (d *Demo) withUpdates(ctx context.Context, serve func(context.Context) error) error {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { d.Run(ctx) })
	defer wg.Wait()
	defer cancel()
	return serve(ctx)
}

// ServeListener serves h (the demo's handler, or another mount of its
// server) on ln until ctx is done, with the watched-resource updates running
// beside it as they do in the stdio child, then shuts the server down.
func (d *Demo) ServeListener(ctx context.Context, ln net.Listener, h http.Handler) error {
	return d.withUpdates(ctx, func(ctx context.Context) error {
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
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
	})
}

// Handler serves the demo over Streamable HTTP, both eras on one endpoint.
func (d *Demo) Handler() http.Handler {
	get := func(*http.Request) *mcp.Server { return d.server }
	legacy := mcp.NewStreamableHTTPHandler(get, nil)
	modern := mcp.NewStreamableHTTPHandler(get, &mcp.StreamableHTTPOptions{Stateless: true, PropagateRequestCancellation: true})
	return transport.EraMux(legacy, modern, strictjson.DefaultLimits())
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }
