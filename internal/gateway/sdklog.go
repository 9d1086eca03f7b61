package gateway

import (
	"context"
	"log/slog"

	"github.com/mcpgate/mcpgate/internal/logs"
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
	return slog.New(logs.MinLevel(l.Handler(), slog.LevelWarn))
}
