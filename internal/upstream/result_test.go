package upstream

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

func TestTextWithin(t *testing.T) {
	text := func(s ...string) *mcp.CallToolResult {
		res := &mcp.CallToolResult{Content: []mcp.Content{}}
		for _, s := range s {
			res.Content = append(res.Content, &mcp.TextContent{Text: s})
		}
		return res
	}
	withMeta := text("hi")
	withMeta.Meta = mcp.Meta{"k": "v"}
	annotated := text("hi")
	annotated.Content[0].(*mcp.TextContent).Annotations = &mcp.Annotations{Priority: 1}
	for _, c := range []struct {
		name  string
		res   *mcp.CallToolResult
		limit int64
		want  bool
	}{
		{"small text", text("hello"), 4 << 20, true},
		{"no content", text(), 100, true},
		{"several texts", text("a", "b", "c"), 4 << 20, true},
		// 20,000 '<' are 20,000 bytes of text but 120,000 of JSON.
		{"text that escapes past the cap", text(strings.Repeat("<", 20_000)), 100_000, false},
		{"text near the cap", text(strings.Repeat("a", 20_000)), 100_000, false},
		{"structured content", &mcp.CallToolResult{Content: []mcp.Content{}, StructuredContent: map[string]any{"a": 1}}, 4 << 20, false},
		{"image", &mcp.CallToolResult{Content: []mcp.Content{&mcp.ImageContent{Data: []byte("x"), MIMEType: "image/png"}}}, 4 << 20, false},
		{"result _meta", withMeta, 4 << 20, false},
		{"annotations", annotated, 4 << 20, false},
	} {
		if got := textWithin(c.res, c.limit); got != c.want {
			t.Errorf("%s: textWithin = %v, want %v", c.name, got, c.want)
		}
		if c.want {
			checkWithin(t, c.res, c.limit)
		}
	}
}

// checkWithin fails t if res marshals to more than limit bytes.
func checkWithin(t *testing.T, res *mcp.CallToolResult, limit int64) {
	t.Helper()
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(b)) > limit {
		t.Fatalf("textWithin said %d bytes fit, but the result marshals to %d: %s", limit, len(b), b)
	}
}

// FuzzTextWithin: whenever textWithin says a result fits, it does.
func FuzzTextWithin(f *testing.F) {
	f.Add("hello", "", true, int64(100))
	f.Add("<>&\u2028\xff\x00", "\"\\", true, int64(90))
	f.Add("", "", false, int64(64))
	f.Fuzz(func(t *testing.T, a, b string, isError bool, limit int64) {
		res := &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: a}, &mcp.TextContent{Text: b}}, IsError: isError}
		if textWithin(res, limit) {
			checkWithin(t, res, limit)
		}
	})
}
