package gateway

import (
	"context"
	"log/slog"
)

// newSDKLogger is the logger the MCP SDK logs through. The SDK logs the
// start and end of every session at INFO, and a 2026-07-28 request is a
// session of its own: three lines for every stateless request, which at
// load is most of the log and a write per line. So below WARN the SDK's
// lines are kept only when the gateway logs at debug.
func newSDKLogger(logger *slog.Logger) *slog.Logger {
	l := logger.With("component", "mcp-sdk")
	if logger.Enabled(context.Background(), slog.LevelDebug) {
		return l
	}
	return slog.New(minLevel{Handler: l.Handler(), min: slog.LevelWarn})
}

// minLevel drops the records of its handler below min.
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
