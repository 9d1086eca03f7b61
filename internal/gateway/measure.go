package gateway

import (
	"context"
	"errors"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/mcpgate/mcpgate/internal/audit"
	"github.com/mcpgate/mcpgate/internal/authn"
	"github.com/mcpgate/mcpgate/internal/telemetry"
	"github.com/mcpgate/mcpgate/internal/transport"
)

// requestLabels are a request's metric labels, filled in by the front as it
// learns them, and its audited call once its write-ahead record is written.
type requestLabels struct {
	era, method string
	// For the trace span only (unbounded: never metric labels).
	name, principal string
	start           time.Time
	call            *callState // nil: no write-ahead record (refused, or auditing off)
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
	labels := &requestLabels{era: telemetry.EraNone, method: telemetry.MethodNone, start: start}
	var span trace.Span
	if f.tracer != nil {
		r, span = telemetry.StartServerSpan(f.tracer, r)
	}
	defer func() {
		f.metrics.Request(labels.era, labels.method, sw.status(), time.Since(start))
		if span != nil {
			telemetry.EndServerSpan(span, labels.era, labels.method, labels.name, labels.principal, sw.status())
		}
	}()
	f.serve(sw, r.WithContext(context.WithValue(r.Context(), labelsKey{}, labels)))
	if cs := labels.call; cs != nil {
		// The response has been written: record how the call ended.
		f.calls.remove(cs)
		f.submitAudit(cs.result(time.Since(start), sw.bytes, sw.status(), r.Context().Err()))
	}
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

// submitAudit queues a call's result record. The response is already sent:
// a failure cannot refuse the call any more, so it is logged and counted.
func (f *front) submitAudit(ev audit.Event) {
	if err := f.audit.Submit(ev); err != nil {
		f.metrics.AuditAppend(0, err)
		f.logger.Error("audit result record not written", "error", err, "call", ev.Call, "method", ev.Method)
	}
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

// statusWriter remembers the status of the answer and counts the body
// bytes written (the audit's bytes_out). Unwrap lets
// http.ResponseController reach the real writer (deadlines, flushing), and
// Flush keeps streaming (SSE) working for code that asserts http.Flusher.
type statusWriter struct {
	http.ResponseWriter
	code  int
	bytes int64
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
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
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
