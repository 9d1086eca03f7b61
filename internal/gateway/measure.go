package gateway

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/mcpgate/mcpgate/internal/audit"
	"github.com/mcpgate/mcpgate/internal/authn"
	"github.com/mcpgate/mcpgate/internal/telemetry"
	"github.com/mcpgate/mcpgate/internal/transport"
)

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
func (f *front) dispatched(r *http.Request, era transport.Era) {
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
