package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/mcpgate/mcpgate/internal/audit"
	"github.com/mcpgate/mcpgate/internal/authn"
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

// buildVersion is the module version of this binary, "devel" when built
// from a work tree.
func buildVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

// listenAdmin binds the admin listener, unless it is disabled.
func (g *Gateway) listenAdmin() error {
	if g.cfg.Admin.Disabled {
		return nil
	}
	ln, err := net.Listen("tcp", g.cfg.Admin.Address)
	if err != nil {
		return fmt.Errorf("admin listener on %s: %w", g.cfg.Admin.Address, err)
	}
	g.adminLn = ln
	return nil
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

// requestLabels are a request's metric labels, filled in by the front as it
// learns them.
type requestLabels struct {
	era, method string
}

type labelsKey struct{}

func labelsFrom(ctx context.Context) *requestLabels {
	l, _ := ctx.Value(labelsKey{}).(*requestLabels)
	if l == nil {
		return &requestLabels{} // not measured: writes go nowhere
	}
	return l
}

// ServeHTTP measures one request to the MCP endpoint: its era, method,
// answer status and duration, whatever the front decides.
func (f *front) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w}
	labels := &requestLabels{era: telemetry.EraNone, method: telemetry.MethodNone}
	defer func() { f.metrics.Request(labels.era, labels.method, sw.status(), time.Since(start)) }()
	f.serve(sw, r.WithContext(context.WithValue(r.Context(), labelsKey{}, labels)))
}

// dispatched labels a request with the era of the SDK handler it is
// handed to (its method was labelled when it was audited, in allow).
func (f *front) dispatched(r *http.Request, era Era) {
	labelsFrom(r.Context()).era = era.String()
}

// appendAudit writes one audit record, measuring it.
func (f *front) appendAudit(ctx context.Context, ev audit.Event) error {
	start := time.Now()
	err := f.audit.Append(ctx, ev)
	if err == nil || !(errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		f.metrics.AuditAppend(time.Since(start), err) // a client that hung up is no audit failure
	}
	return err
}

// authFailureReason is the metric label of an authentication failure.
func authFailureReason(err error) string {
	switch {
	case errors.Is(err, authn.ErrNoCredentials):
		return telemetry.AuthNoCredentials
	case errors.Is(err, authn.ErrMalformed):
		return telemetry.AuthMalformed
	default:
		return telemetry.AuthInvalid
	}
}

// refusalReason is the metric label of a refusal by the front.
func refusalReason(status int, message string) string {
	switch status {
	case http.StatusMethodNotAllowed:
		return telemetry.RefusedMethod
	case http.StatusUnauthorized:
		return telemetry.RefusedUnauthenticated
	case http.StatusUnsupportedMediaType:
		return telemetry.RefusedMediaType
	case http.StatusRequestEntityTooLarge:
		return telemetry.RefusedTooLarge
	case http.StatusServiceUnavailable:
		return telemetry.RefusedAuditUnavailable
	}
	if strings.HasPrefix(message, invalidMessagePrefix) {
		return telemetry.RefusedBadJSON
	}
	return telemetry.RefusedReadTimeout
}

// invalidMessagePrefix starts the message of every strict JSON refusal.
const invalidMessagePrefix = "invalid JSON-RPC message: "

// statusWriter remembers the status of the answer. Unwrap lets
// http.ResponseController reach the real writer (deadlines, flushing), and
// Flush keeps streaming (SSE) working for code that asserts http.Flusher.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 && code >= 200 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// status is what the client was answered; 200 if the handler wrote nothing.
func (w *statusWriter) status() int {
	if w.code == 0 {
		return http.StatusOK
	}
	return w.code
}
