// Package logs holds what mcpgate does to log records beyond log/slog: a
// handler that keeps a chatty component's records out of a shared log. It
// depends on nothing else, so the demo server (also the benchmarks'
// baseline) can use it without linking the gateway's telemetry.
package logs

import (
	"context"
	"log/slog"
)

// MinLevel wraps h so that records below min are dropped before they are
// built: it keeps a chatty component's Info records (the MCP SDK's) out of
// the log without changing the level of the logger it shares.
func MinLevel(h slog.Handler, min slog.Level) slog.Handler {
	return minLevel{Handler: h, min: min}
}

type minLevel struct {
	slog.Handler
	min slog.Level
}

func (h minLevel) Enabled(ctx context.Context, level slog.Level) bool {
	return level >= h.min && h.Handler.Enabled(ctx, level)
}

func (h minLevel) WithAttrs(attrs []slog.Attr) slog.Handler {
	return minLevel{Handler: h.Handler.WithAttrs(attrs), min: h.min}
}

func (h minLevel) WithGroup(name string) slog.Handler {
	return minLevel{Handler: h.Handler.WithGroup(name), min: h.min}
}
