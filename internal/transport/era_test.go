package transport

import (
	"net/http"
	"testing"

	"github.com/mcpgate/mcpgate/internal/strictjson"
)

func TestChooseEra(t *testing.T) {
	h := func(kv ...string) http.Header {
		hdr := http.Header{}
		for i := 0; i+1 < len(kv); i += 2 {
			hdr.Set(kv[i], kv[i+1])
		}
		return hdr
	}
	tests := []struct {
		name   string
		header http.Header
		body   string
		want   Era
	}{
		{"modern header", h("MCP-Protocol-Version", "2026-07-28"), "", Modern},
		{"future header", h("MCP-Protocol-Version", "2027-01-01"), "", Modern},
		{"legacy header", h("MCP-Protocol-Version", "2025-11-25"), "", Legacy},
		{"initialize", h(), `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25"}}`, Legacy},
		{"modern _meta without header", h(), `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}`, Modern},
		{"discover", h(), `{"jsonrpc":"2.0","id":1,"method":"server/discover"}`, Modern},
		{"session traffic", h("Mcp-Session-Id", "abc"), `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`, Legacy},
		{"no body (GET)", h(), "", Legacy},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := mustParse(t, tt.body)
			if got := ChooseEra(tt.header, msg); got != tt.want {
				t.Fatalf("ChooseEra = %v, want %v", got, tt.want)
			}
		})
	}
}

func mustParse(t *testing.T, body string) *strictjson.Message {
	t.Helper()
	if body == "" {
		return nil
	}
	m, err := strictjson.ParseMessage([]byte(body), strictjson.DefaultLimits())
	if err != nil {
		t.Fatalf("ParseMessage(%s): %v", body, err)
	}
	return m
}
