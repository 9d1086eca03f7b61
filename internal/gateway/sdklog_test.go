package gateway

import (
	"log/slog"
	"strings"
	"testing"
)

// TestSDKLogLevel: at the default level the SDK's per-session INFO lines
// (three for every legacy session, and for a 2026-07-28 request it does not
// serve directly) are not logged, its warnings are; at debug everything is.
func TestSDKLogLevel(t *testing.T) {
	for _, tc := range []struct {
		level        slog.Level
		wantSessions bool
	}{{slog.LevelInfo, false}, {slog.LevelDebug, true}} {
		t.Run(tc.level.String(), func(t *testing.T) {
			var buf syncBuffer
			logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: tc.level}))
			tg := newLoggedTestGateway(t, nil, logger)
			legacyInit(t, tg, tg.keyA)
			if got := strings.Contains(buf.String(), "server session connected"); got != tc.wantSessions {
				t.Errorf("at %s, the SDK's session lines logged: %v, want %v", tc.level, got, tc.wantSessions)
			}

			sdk := newSDKLogger(logger)
			sdk.Warn("sdk-warning")
			sdk.Info("sdk-info")
			if !strings.Contains(buf.String(), "sdk-warning") || !strings.Contains(buf.String(), "component=mcp-sdk") {
				t.Errorf("the SDK's warning was not logged with its component: %s", buf.String())
			}
			if got := strings.Contains(buf.String(), "sdk-info"); got != tc.wantSessions {
				t.Errorf("at %s, the SDK's info logged: %v", tc.level, got)
			}
		})
	}
}
