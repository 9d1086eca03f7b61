package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/mcpgate/mcpgate/internal/config"
	"github.com/mcpgate/mcpgate/internal/telemetry"
	"github.com/mcpgate/mcpgate/internal/transport"
)

// Metrics is the gateway's metrics registry and recorders (served on the
// admin listener's /metrics).
func (g *Gateway) Metrics() *telemetry.Metrics { return g.metrics }

// AdminAddr is the admin listener's address once Listen has bound it; empty
// when the admin listener is disabled or not bound yet.
func (g *Gateway) AdminAddr() string {
	if g.adminLn == nil {
		return ""
	}
	return g.adminLn.Addr().String()
}

// Version is the module version of this binary, "devel" when built from a
// work tree.
func Version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

// adminHandler serves /metrics, /healthz and /readyz. On a loopback address
// the Host and Origin guard admits the loopback names only, so a web page
// cannot read the endpoints through DNS rebinding.
func (g *Gateway) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", g.metrics.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		plain(w, http.StatusOK, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if reason := g.notReady(); reason != "" {
			plain(w, http.StatusServiceUnavailable, "not ready: "+reason)
			return
		}
		plain(w, http.StatusOK, "ready")
	})
	if config.IsLoopbackAddress(g.cfg.Admin.Address) {
		return transport.NewHostGuard(config.Listen{}, false).Wrap(mux, g.logger.With("component", "admin"))
	}
	return mux
}

// notReady says why the gateway should not get traffic, or "" if it should.
func (g *Gateway) notReady() string {
	if !g.serving.Load() {
		return "the MCP listener is not serving"
	}
	if g.audit != nil {
		if err := g.audit.Err(); err != nil {
			return "the audit log cannot be written"
		}
	}
	return ""
}

func plain(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	fmt.Fprintln(w, body)
}

// serveAdmin starts the admin server on the bound admin listener and
// returns the function that stops it (at most grace for scrapes in flight).
func (g *Gateway) serveAdmin() (stop func()) {
	if g.adminLn == nil {
		return func() {}
	}
	srv := &http.Server{
		Handler:           g.adminHandler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    16 << 10,
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(g.adminLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			g.logger.Error("admin listener stopped", "error", err)
		}
	}()
	g.logger.Info("admin listener serving", "address", g.adminLn.Addr().String(), "endpoints", "/metrics /healthz /readyz")
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			srv.Close()
		}
		<-done
	}
}
