package gateway

import (
	"context"
	"log/slog"
	"testing"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/mcpgate/mcpgate/internal/telemetry"
)

// BenchmarkCallTracing is BenchmarkCall's gateway row with tracing off and
// on (every request sampled, spans batched to an exporter that discards
// them), in one run: the ratio of the two is what tracing costs a call,
// short of the network export itself.
func BenchmarkCallTracing(b *testing.B) {
	b.Run("off", func(b *testing.B) {
		tg := newTestGateway(b, raiseLimits)
		awaitTool(b, tg, "echo")
		runHTTPCalls(b, tg.URL, tg.keyA, 0, false)
	})
	b.Run("on", func(b *testing.B) {
		tp := telemetry.NewTracerProviderWith(tracetest.NewNoopExporter(), "bench", "devel", 1)
		defer tp.Shutdown(context.Background())
		tg := newLoggedTestGateway(b, raiseLimits, slog.New(slog.DiscardHandler), WithTracerProvider(tp))
		awaitTool(b, tg, "echo")
		runHTTPCalls(b, tg.URL, tg.keyA, 0, false)
	})
}
