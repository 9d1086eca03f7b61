package json

import (
	"runtime"
	"testing"
)

// TestPatchMapsWithoutSizeHint covers mcpgate's patch (PATCHES.md): maps
// decode as before, and a small object no longer costs a 64-entry map.
func TestPatchMapsWithoutSizeHint(t *testing.T) {
	var m map[string]any
	if _, err := Parse([]byte(`{"a":1,"b":{"c":"d"},"e":[true]}`), &m, 0); err != nil {
		t.Fatal(err)
	}
	if len(m) != 3 || m["b"].(map[string]any)["c"] != "d" {
		t.Fatalf("decoded %v", m)
	}
	typed := struct {
		S map[string]string
		R map[string]RawMessage
		L map[string][]string
		B map[string]bool
	}{}
	in := `{"S":{"a":"b"},"R":{"a":[1]},"L":{"a":["b","c"]},"B":{"a":true}}`
	if _, err := Parse([]byte(in), &typed, 0); err != nil {
		t.Fatal(err)
	}
	if typed.S["a"] != "b" || string(typed.R["a"]) != "[1]" || len(typed.L["a"]) != 2 || !typed.B["a"] {
		t.Fatalf("decoded %+v", typed)
	}

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	const n = 100
	for range n {
		var m map[string]any
		if _, err := Parse([]byte(`{"progressToken":"t"}`), &m, 0); err != nil {
			t.Fatal(err)
		}
	}
	runtime.ReadMemStats(&after)
	// With the hint, each one-entry object allocated about 5 KB.
	if per := (after.TotalAlloc - before.TotalAlloc) / n; per > 1024 {
		t.Errorf("a one-entry object allocates %d bytes, want under 1024", per)
	}
}
