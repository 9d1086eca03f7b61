package transport

import (
	"encoding/json"
	"runtime"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestSDKDecodeAllocation guards the patches in third_party/go-sdk and
// third_party/segmentio-encoding (their PATCHES.md). Unpatched, the SDK
// allocates a 32 KiB read buffer for every JSON value it decodes and a
// 64-entry map for every object, and that garbage cost the gateway more than
// half its throughput. If this fails after an upgrade of either module, the
// new release still has the problem: keep the patch.
func TestSDKDecodeAllocation(t *testing.T) {
	request := []byte(`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hi"}}}`)
	result := []byte(`{"content":[{"type":"text","text":"hi"}],"structuredContent":{"message":"hi"},"_meta":{"k":"v"}}`)
	tests := []struct {
		name   string
		decode func() error
		max    uint64 // bytes allocated per decode
	}{
		{"jsonrpc.DecodeMessage", func() error { _, err := jsonrpc.DecodeMessage(request); return err }, 4 << 10},
		{"CallToolResult", func() error { var r mcp.CallToolResult; return json.Unmarshal(result, &r) }, 4 << 10},
	}
	for _, tt := range tests {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		const n = 100
		for range n {
			if err := tt.decode(); err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
		}
		runtime.ReadMemStats(&after)
		per := (after.TotalAlloc - before.TotalAlloc) / n
		t.Logf("%s: %d bytes", tt.name, per)
		if per > tt.max {
			t.Errorf("%s allocates %d bytes per small message, want under %d (are the replace directives for third_party/ gone?)", tt.name, per, tt.max)
		}
	}
}
