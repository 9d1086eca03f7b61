package strictjson

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// typicalCall is a representative tools/call body (~300 bytes).
const typicalCall = `{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"search_issues",` +
	`"arguments":{"query":"is:open label:bug sort:updated","repo":"mcpgate/mcpgate","limit":20,"include_closed":false,` +
	`"labels":["bug","security"]},"_meta":{"progressToken":"c2f1-77a0","io.modelcontextprotocol/protocolVersion":"2025-11-25"}}}`

// largeCall builds a tools/call body of about size bytes: an array of
// small documents, with escapes and non-ASCII text as real payloads have.
func largeCall(size int) string {
	var b strings.Builder
	b.WriteString(`{"jsonrpc":"2.0","id":"req-7","method":"tools/call","params":{"name":"index_documents","arguments":{"documents":[`)
	for i := 0; b.Len() < size-200; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":%d,"title":"Document %d \u00e9t\u00e9","score":%d.25,"tags":["alpha","beta"],"body":"Lorem ipsum dolor sit amet,\nconsectetur \"adipiscing\" elit — %d"}`, i, i, i, i)
	}
	b.WriteString(`]},"_meta":{"io.modelcontextprotocol/protocolVersion":"2025-11-25"}}}`)
	return b.String()
}

func benchBodies() []struct {
	name string
	body []byte
} {
	return []struct {
		name string
		body []byte
	}{
		{"typical", []byte(typicalCall)},
		{"64KiB", []byte(largeCall(64 << 10))},
	}
}

func BenchmarkParseMessage(b *testing.B) {
	for _, bb := range benchBodies() {
		b.Run(bb.name, func(b *testing.B) {
			if _, err := ParseMessage(bb.body, DefaultLimits()); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(bb.body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ParseMessage(bb.body, DefaultLimits()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkCheck(b *testing.B) {
	for _, bb := range benchBodies() {
		b.Run(bb.name, func(b *testing.B) {
			b.SetBytes(int64(len(bb.body)))
			b.ReportAllocs()
			for b.Loop() {
				if err := Check(bb.body, DefaultLimits()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkBaselineUnmarshalMap is what the gate competes with: the cheapest
// general decode the gateway could otherwise do (and which would miss
// duplicates and case variants).
func BenchmarkBaselineUnmarshalMap(b *testing.B) {
	for _, bb := range benchBodies() {
		b.Run(bb.name, func(b *testing.B) {
			b.SetBytes(int64(len(bb.body)))
			b.ReportAllocs()
			for b.Loop() {
				var m map[string]any
				if err := json.Unmarshal(bb.body, &m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestBenchBodies(t *testing.T) {
	for _, bb := range benchBodies() {
		if !json.Valid(bb.body) {
			t.Fatalf("%s body invalid", bb.name)
		}
		t.Logf("%s: %d bytes", bb.name, len(bb.body))
	}
}
