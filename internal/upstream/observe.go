package upstream

import (
	"context"
	"errors"
	"net/http"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// CallObserver is told of every request forwarded to an upstream (the
// gateway's latency histogram and trace spans). StartCall returns the
// context the call runs in (it may carry a span, which the HTTP transport
// propagates) and the function that ends the measurement.
type CallObserver interface {
	StartCall(ctx context.Context, header http.Header, upstream, method, tool string) (context.Context, func(err error, timedOut bool))
}

type noObserver struct{}

func (noObserver) StartCall(ctx context.Context, _ http.Header, _, _, _ string) (context.Context, func(error, bool)) {
	return ctx, func(error, bool) {}
}

// observeCall runs do under the observer. tool is the upstream's own name
// of the tool for tools/call (a catalog tool, so its label set is bounded by
// what the upstream lists).
func (c *Catalog) observeCall(ctx context.Context, req mcp.Request, u *Upstream, method, target string, do func(context.Context) error) error {
	var header http.Header
	if extra := req.GetExtra(); extra != nil {
		header = extra.Header
	}
	tool := ""
	if method == "tools/call" {
		tool = target
	}
	callCtx, end := c.observer.StartCall(ctx, header, u.spec.Name, method, tool)
	err := do(callCtx)
	end(err, err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded))
	return err
}

// traceParent adds the W3C trace context of the call's span (the gateway's
// own, never the client's: the SDK builds upstream requests afresh) to
// every request to a url upstream. Without a span it adds nothing.
type traceParent struct{ base http.RoundTripper }

func (t traceParent) RoundTrip(r *http.Request) (*http.Response, error) {
	if trace.SpanContextFromContext(r.Context()).IsValid() {
		r = r.Clone(r.Context())
		propagation.TraceContext{}.Inject(r.Context(), propagation.HeaderCarrier(r.Header))
	}
	return t.base.RoundTrip(r)
}
