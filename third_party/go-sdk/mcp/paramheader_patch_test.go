// mcpgate patch 5 (PATCHES.md): extractParamHeaderAnnotations is memoized
// per tool, and the memo goes with the tool.

package mcp

import (
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
	"weak"
)

func sortedBindings(bs []paramHeaderBinding) []string {
	var out []string
	for _, b := range bs {
		out = append(out, strings.Join(b.Path, ".")+"="+b.Header)
	}
	slices.Sort(out)
	return out
}

func TestPatchParamHeaderMemo(t *testing.T) {
	schema := map[string]any{
		"type": "object",
		"properties": map[string]any{
			"region": map[string]any{"type": "string", "x-mcp-header": "Region"},
			"plain":  map[string]any{"type": "string"},
			"nested": map[string]any{"type": "object", "properties": map[string]any{
				"tenant": map[string]any{"type": "string", "x-mcp-header": "Tenant"},
			}},
		},
	}
	tool := &Tool{Name: "t", InputSchema: schema}
	want := []string{"nested.tenant=Tenant", "region=Region"}
	first := extractParamHeaderAnnotations(tool)
	if got := sortedBindings(first); !reflect.DeepEqual(got, want) {
		t.Fatalf("bindings %v, want %v", got, want)
	}
	if got := sortedBindings(extractParamHeaderAnnotationsUncached(tool)); !reflect.DeepEqual(got, want) {
		t.Fatalf("uncached bindings %v, want %v", got, want)
	}
	if second := extractParamHeaderAnnotations(tool); &second[0] != &first[0] {
		t.Fatal("the second lookup recomputed the bindings: no memo")
	}
	none := &Tool{Name: "u", InputSchema: map[string]any{"type": "object"}}
	if got := extractParamHeaderAnnotations(none); got != nil {
		t.Fatalf("a schema without annotations has bindings %v", got)
	}
	runtime.KeepAlive(tool)

	// The memo goes with its tool.
	key := func() weak.Pointer[Tool] {
		gone := &Tool{Name: "gone", InputSchema: schema}
		extractParamHeaderAnnotations(gone)
		return weak.Make(gone)
	}()
	for deadline := time.Now().Add(5 * time.Second); ; {
		runtime.GC()
		if _, ok := paramHeaderCache.Load(key); !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the memo of a collected tool was never deleted")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
