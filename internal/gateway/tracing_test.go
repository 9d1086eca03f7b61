package gateway

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/mcpgate/mcpgate/internal/config"
	"github.com/mcpgate/mcpgate/internal/telemetry"
)

// traceparents records the traceparent of every request the remote
// upstream gets.
type traceparents struct {
	mu   sync.Mutex
	seen []string
}

func (p *traceparents) record(r *http.Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seen = append(p.seen, r.Header.Get("Traceparent"))
}

func (p *traceparents) reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seen = nil
}

func (p *traceparents) all() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.seen)
}

// parseTraceparent splits a W3C traceparent into trace id and parent span id.
func parseTraceparent(t *testing.T, h string) (traceID, spanID string) {
	t.Helper()
	parts := strings.Split(h, "-")
	if len(parts) != 4 || parts[0] != "00" || len(parts[1]) != 32 || len(parts[2]) != 16 {
		t.Fatalf("traceparent %q is not W3C trace context", h)
	}
	return parts[1], parts[2]
}

func spanNamed(spans tracetest.SpanStubs, name string) (tracetest.SpanStub, bool) {
	for _, s := range spans {
		if s.Name == name {
			return s, true
		}
	}
	return tracetest.SpanStub{}, false
}

// callSpans returns the server span of a tools/call and the client span of
// the upstream call made for it.
func callSpans(t *testing.T, spans tracetest.SpanStubs) (server, client tracetest.SpanStub) {
	t.Helper()
	server, ok := spanNamed(spans, "tools/call")
	if !ok {
		t.Fatalf("no server span named tools/call among %d spans", len(spans))
	}
	if client, ok = spanNamed(spans, "upstream tools/call"); !ok {
		t.Fatal("no upstream client span")
	}
	return server, client
}

func attr(s tracetest.SpanStub, key string) string {
	for _, kv := range s.Attributes {
		if string(kv.Key) == key {
			return kv.Value.String()
		}
	}
	return ""
}

// TestTracesThroughHTTPUpstream: with a tracer provider, a tools/call makes
// a server span and a child client span, and the HTTP upstream receives a
// traceparent naming that client span in the server span's trace. The
// client's own traceparent makes the trace continue, but the upstream never
// sees the client's span as its parent. In a legacy session, the upstream
// call descends from the request that made it, not from initialize.
func TestTracesThroughHTTPUpstream(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp), sdktrace.WithSampler(telemetry.Sampler(1)))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	var seen traceparents
	tg := newRemoteGateway(t, nil, seen.record, WithTracerProvider(tp))
	awaitTool(t, tg, "echo")
	exp.Reset()
	seen.reset()

	const clientTrace, clientSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	resp, b := tg.post(t, tg.keyA, modernBody(1, "tools/call", `"name":"echo","arguments":{"message":"argument-must-not-be-traced"}`), func(r *http.Request) {
		modernHeaders("tools/call", "echo")(r)
		r.Header.Set("Traceparent", "00-"+clientTrace+"-"+clientSpan+"-00") // not sampled: must not matter
	})
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "argument-must-not-be-traced") {
		t.Fatalf("echo: %d %s", resp.StatusCode, b)
	}
	spans := exp.GetSpans()
	server, client := callSpans(t, spans)
	if server.SpanKind != trace.SpanKindServer || client.SpanKind != trace.SpanKindClient {
		t.Errorf("span kinds %v, %v", server.SpanKind, client.SpanKind)
	}
	if got := server.SpanContext.TraceID().String(); got != clientTrace {
		t.Errorf("server span trace %s, want the client's %s (an incoming traceparent is the parent)", got, clientTrace)
	}
	if server.Parent.SpanID().String() != clientSpan {
		t.Errorf("server span parent %s, want the client's span %s", server.Parent.SpanID(), clientSpan)
	}
	if client.Parent.SpanID() != server.SpanContext.SpanID() || client.SpanContext.TraceID() != server.SpanContext.TraceID() {
		t.Errorf("upstream span parent %s, want the server span %s", client.Parent.SpanID(), server.SpanContext.SpanID())
	}
	for key, want := range map[string]string{
		telemetry.AttrMethod: "tools/call", telemetry.AttrName: "echo", telemetry.AttrPrincipal: "alice",
		telemetry.AttrEra: "modern", telemetry.AttrStatus: "200",
	} {
		if got := attr(server, key); got != want {
			t.Errorf("server span %s = %q, want %q", key, got, want)
		}
	}
	if attr(client, telemetry.AttrUpstream) != "remote" || attr(client, telemetry.AttrName) != "echo" || attr(client, telemetry.AttrOutcome) != "ok" {
		t.Errorf("upstream span attributes %v", client.Attributes)
	}
	for _, s := range spans {
		for _, kv := range s.Attributes {
			if v := kv.Value.String(); strings.Contains(v, "argument-must-not-be-traced") || strings.Contains(v, tg.keyA) {
				t.Errorf("span %s attribute %s carries the arguments or the key", s.Name, kv.Key)
			}
		}
	}
	var call string
	for _, h := range seen.all() {
		if h != "" {
			call = h
		}
	}
	if call == "" {
		t.Fatalf("the upstream saw no traceparent: %q", seen.all())
	}
	traceID, parent := parseTraceparent(t, call)
	if traceID != server.SpanContext.TraceID().String() {
		t.Errorf("upstream traceparent trace %s, want the server span's %s", traceID, server.SpanContext.TraceID())
	}
	if parent != client.SpanContext.SpanID().String() {
		t.Errorf("upstream traceparent parent %s, want the gateway's upstream span %s (never the client's %s)", parent, client.SpanContext.SpanID(), clientSpan)
	}

	// A legacy session: the call's upstream span descends from the call's
	// own server span, although the SDK runs the session's handlers in a
	// context derived from initialize.
	sid := legacyInit(t, tg, tg.keyA)
	exp.Reset()
	resp, b = tg.post(t, tg.keyA, `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"message":"legacy"}}}`, func(r *http.Request) {
		r.Header.Set("Mcp-Session-Id", sid)
		r.Header.Set("MCP-Protocol-Version", "2025-11-25")
	})
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "legacy") {
		t.Fatalf("legacy echo: %d %s", resp.StatusCode, b)
	}
	spans = exp.GetSpans()
	server, client = callSpans(t, spans) // the legacy call's
	if client.Parent.SpanID() != server.SpanContext.SpanID() {
		t.Errorf("legacy upstream span parent %s, want this call's server span %s", client.Parent.SpanID(), server.SpanContext.SpanID())
	}
	if attr(server, telemetry.AttrEra) != "legacy" {
		t.Errorf("legacy server span era %q", attr(server, telemetry.AttrEra))
	}
}

// TestNoTraceparentWithoutTracing: with tracing off the upstream gets no
// traceparent at all, not even the one the client sent.
func TestNoTraceparentWithoutTracing(t *testing.T) {
	var seen traceparents
	tg := newRemoteGateway(t, nil, seen.record)
	awaitTool(t, tg, "echo")
	resp, _ := tg.post(t, tg.keyA, modernBody(1, "tools/call", `"name":"echo","arguments":{"message":"x"}`), func(r *http.Request) {
		modernHeaders("tools/call", "echo")(r)
		r.Header.Set("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("echo: %d", resp.StatusCode)
	}
	for _, h := range seen.all() {
		if h != "" {
			t.Fatalf("the upstream saw traceparent %q with tracing off", h)
		}
	}
}

// TestOTLPExportToReceiver: spans reach a real OTLP/HTTP receiver as
// protobuf ExportTraceServiceRequests, flushed by Shutdown.
func TestOTLPExportToReceiver(t *testing.T) {
	var mu sync.Mutex
	var names []string
	var services []string
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" {
			http.Error(w, "want POST /v1/traces protobuf", http.StatusBadRequest)
			return
		}
		b, _ := io.ReadAll(r.Body)
		var req collectortrace.ExportTraceServiceRequest
		if err := proto.Unmarshal(b, &req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		for _, rs := range req.GetResourceSpans() {
			for _, a := range rs.GetResource().GetAttributes() {
				if a.GetKey() == "service.name" {
					services = append(services, a.GetValue().GetStringValue())
				}
			}
			for _, ss := range rs.GetScopeSpans() {
				for _, s := range ss.GetSpans() {
					names = append(names, s.GetName())
				}
			}
		}
		mu.Unlock()
		out, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(out)
	}))
	t.Cleanup(receiver.Close)
	cfg := config.Tracing{OTLPEndpoint: receiver.URL, Insecure: true, ServiceName: "mcpgate-test", Timeout: 5 * time.Second}
	tp, err := telemetry.NewTracerProvider(cfg, "test", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	tg := newRemoteGateway(t, nil, nil, WithTracerProvider(tp))
	awaitTool(t, tg, "echo")
	if resp, _ := tg.post(t, tg.keyA, modernBody(1, "tools/call", `"name":"echo","arguments":{"message":"x"}`), modernHeaders("tools/call", "echo")); resp.StatusCode != http.StatusOK {
		t.Fatalf("echo: %d", resp.StatusCode)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tp.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, want := range []string{"tools/call", "upstream tools/call"} {
		if !slices.Contains(names, want) {
			t.Errorf("receiver got spans %q, lacking %q", names, want)
		}
	}
	if len(services) == 0 || services[0] != "mcpgate-test" {
		t.Errorf("service.name %q, want mcpgate-test", services)
	}
}

// TestTracesThroughStdioFront: a request on the stdio front (mcpgate run)
// gets a server span, and the upstream call made for it is its child; the
// span carries the principal "local" and no argument.
func TestTracesThroughStdioFront(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp), sdktrace.WithSampler(telemetry.Sampler(1)))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	c, _, _ := startStdio(t, context.Background(), nil, WithTracerProvider(tp))
	c.initialize()
	exp.Reset()

	r := c.call(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"message":"argument-must-not-be-traced"}}}`)
	if r["result"] == nil {
		t.Fatalf("echo over stdio: %v", r)
	}
	// The span ends once the answer is written, just after the client
	// reads it.
	waitFor(t, "the stdio server span", func() bool { _, ok := spanNamed(exp.GetSpans(), "tools/call"); return ok })
	spans := exp.GetSpans()
	server, client := callSpans(t, spans)
	if server.SpanKind != trace.SpanKindServer || server.Parent.IsValid() {
		t.Errorf("server span: kind %v, parent %v; want a server span that starts its trace", server.SpanKind, server.Parent)
	}
	if client.Parent.SpanID() != server.SpanContext.SpanID() || client.SpanContext.TraceID() != server.SpanContext.TraceID() {
		t.Errorf("upstream span parent %s, want the server span %s", client.Parent.SpanID(), server.SpanContext.SpanID())
	}
	for key, want := range map[string]string{
		telemetry.AttrMethod: "tools/call", telemetry.AttrName: "echo", telemetry.AttrPrincipal: "local",
	} {
		if got := attr(server, key); got != want {
			t.Errorf("server span %s = %q, want %q", key, got, want)
		}
	}
	for _, s := range spans {
		for _, a := range s.Attributes {
			if strings.Contains(a.Value.String(), "argument-must-not-be-traced") {
				t.Errorf("span %s carries the call's argument in %s", s.Name, a.Key)
			}
		}
	}
}
