package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/mcpgate/mcpgate/internal/config"
	"github.com/mcpgate/mcpgate/internal/gateway"
	"github.com/mcpgate/mcpgate/internal/telemetry"
)

// tracingFlushTimeout bounds the export of the spans still buffered at exit.
const tracingFlushTimeout = 5 * time.Second

// startTracing makes the tracer provider when tracing is configured, and
// returns the gateway option that hands it over and the function that
// flushes and stops it. With tracing off both are no-ops.
func startTracing(cfg config.Tracing, logger *slog.Logger) ([]gateway.Option, func(), error) {
	if !cfg.Enabled() {
		return nil, func() {}, nil
	}
	logger = logger.With("component", "tracing")
	tp, err := telemetry.NewTracerProvider(cfg, gateway.Version(), logger)
	if err != nil {
		return nil, nil, fmt.Errorf("start tracing: %w", err)
	}
	if cfg.Insecure {
		logger.Warn("SPANS ARE EXPORTED IN PLAINTEXT to a loopback collector", "key", "tracing.insecure", "endpoint", cfg.OTLPEndpoint)
	}
	logger.Info("tracing on", "endpoint", cfg.OTLPEndpoint, "sample_ratio", cfg.Ratio())
	stop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), tracingFlushTimeout)
		defer cancel()
		if err := tp.Shutdown(ctx); err != nil {
			logger.Warn("spans not flushed at exit", "error", err)
		}
	}
	return []gateway.Option{gateway.WithTracerProvider(tp)}, stop, nil
}
