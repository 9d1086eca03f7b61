package logs_test

import (
	"log/slog"
	"os"

	"github.com/mcpgate/mcpgate/internal/logs"
)

func ExampleMinLevel() {
	h := slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		Level: slog.LevelDebug,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	})
	sdk := slog.New(logs.MinLevel(h, slog.LevelWarn)).With("component", "mcp-sdk")
	sdk.Info("server session connected")
	sdk.Warn("something the operator must see")
	// Output: level=WARN msg="something the operator must see" component=mcp-sdk
}
