package upstream

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
)

// npmSchemas are the input schemas server-everything and server-filesystem
// (@modelcontextprotocol, 2026.8.31) list, as mcpgate serves them (prefixed).
func npmSchemas(t testing.TB) map[string]any {
	t.Helper()
	b, err := os.ReadFile("testdata/npm-tool-schemas.json")
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// catalogOf builds a catalog holding the given tools' schemas, as sync would.
func catalogOf(t testing.TB, schemas map[string]any) *Catalog {
	t.Helper()
	c := NewCatalog(nil, Options{})
	for name, raw := range schemas {
		s, err := compileSchema(raw)
		if err != nil {
			t.Fatalf("compile %s: %v", name, err)
		}
		c.tools[name] = entry{name: name, schema: s}
	}
	return c
}

func TestValidateArgumentsRealSchemas(t *testing.T) {
	c := catalogOf(t, npmSchemas(t))
	tests := []struct {
		tool, args string
		want       string // "" for valid; else substrings of the error, "|"-separated
	}{
		{"everything.echo", `{"message":"hi"}`, ""},
		{"everything.echo", `{}`, `required|message`},
		{"everything.echo", ``, `required|message`}, // missing arguments are validated as {}
		{"everything.echo", `{"message":7}`, `message|string`},
		{"everything.get-sum", `{"a":1,"b":2.5}`, ""},
		{"everything.get-sum", `{"a":"1","b":2}`, `/a|number`},
		{"everything.get-sum", `{"a":1}`, `required|b`},
		{"everything.trigger-long-running-operation", `{}`, ""},
		{"everything.trigger-long-running-operation", `{"duration":true}`, `duration|number`},
		{"fs.read_text_file", `{"path":"/tmp/x","head":3}`, ""},
		{"fs.read_text_file", `{"path":["/etc/passwd"]}`, `path|string`},
		{"fs.edit_file", `{"path":"a","edits":[{"oldText":"x","newText":"y"}]}`, ""},
		{"fs.edit_file", `{"path":"a","edits":[{"oldText":"x"}]}`, `/properties/edits/items|required|newText`},
		{"fs.edit_file", `{"path":"a","edits":{}}`, `edits|array`},
		{"fs.read_multiple_files", `{"paths":[]}`, `paths|minItems`},
		{"fs.read_multiple_files", `{"paths":["a",1]}`, `/properties/paths/items|type|string`},
		{"fs.list_allowed_directories", `{}`, ""},
		{"everything.echo", `[1,2]`, `object`},
		{"everything.echo", `"x"`, `object`},
		{"no.such.tool", `{"x":1}`, ""}, // not ours to answer: the SDK says unknown tool
	}
	for _, tt := range tests {
		t.Run(tt.tool+" "+tt.args, func(t *testing.T) {
			err := c.ValidateArguments(tt.tool, json.RawMessage(tt.args))
			if tt.want == "" {
				if err != nil {
					t.Fatalf("valid arguments refused: %v", err)
				}
				return
			}
			if err == nil || !errors.Is(err, ErrArguments) {
				t.Fatalf("err = %v, want an ErrArguments naming %q", err, tt.want)
			}
			for _, part := range strings.Split(tt.want, "|") {
				if !strings.Contains(err.Error(), part) {
					t.Errorf("err = %q, want it to name %q", err, part)
				}
			}
		})
	}
}

func TestCompileSchemaRefusals(t *testing.T) {
	deep := strings.Repeat(`{"items":`, maxSchemaDepth) + `{}` + strings.Repeat(`}`, maxSchemaDepth)
	for name, raw := range map[string]string{
		"remote $ref":  `{"type":"object","properties":{"a":{"$ref":"https://evil.example/schema.json"}}}`,
		"too deep":     `{"type":"object","properties":{"a":` + deep + `}}`,
		"too large":    `{"type":"object","description":"` + strings.Repeat("x", maxSchemaBytes) + `"}`,
		"bad pattern":  `{"type":"object","properties":{"a":{"type":"string","pattern":"(("}}}`,
		"missing $def": `{"type":"object","properties":{"a":{"$ref":"#/$defs/nope"}}}`,
	} {
		var v any
		if err := json.Unmarshal([]byte(raw), &v); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, err := compileSchema(v); err == nil {
			t.Errorf("%s: compiled", name)
		}
	}
	// A type name the library does not know compiles, but nothing passes
	// it: such a tool fails closed.
	s, err := compileSchema(map[string]any{"type": "object", "properties": map[string]any{"a": map[string]any{"type": "strnig"}}})
	if err != nil {
		t.Fatal(err)
	}
	if s.Validate(map[string]any{"a": "x"}) == nil {
		t.Error("a value passed an unknown type")
	}
}

func BenchmarkValidateArguments(b *testing.B) {
	c := catalogOf(b, npmSchemas(b))
	args := json.RawMessage(`{"path":"/data/notes.txt","edits":[{"oldText":"a","newText":"b"},{"oldText":"c","newText":"d"}],"dryRun":true}`)
	b.ReportAllocs()
	for b.Loop() {
		if err := c.ValidateArguments("fs.edit_file", args); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzCompileSchema: an upstream's schema and a client's arguments are both
// untrusted; neither compiling nor validating may panic, and a schema that
// compiles gives every instance a definite answer.
func FuzzCompileSchema(f *testing.F) {
	f.Add(`{"type":"object","properties":{"a":{"type":"string","pattern":"^x"}},"required":["a"]}`, `{"a":"xy"}`)
	f.Add(`{"type":"object","$defs":{"n":{"type":"integer"}},"properties":{"a":{"$ref":"#/$defs/n"}}}`, `{"a":1.5}`)
	f.Add(`{"$schema":"http://json-schema.org/draft-07/schema#","type":"object","additionalProperties":false}`, `{"b":null}`)
	f.Add(`{"type":"object","properties":{"a":{"anyOf":[{"type":"string"},{"type":"array","items":{"$ref":"#"}}]}}}`, `{"a":[{"a":"x"}]}`)
	f.Fuzz(func(t *testing.T, schema, instance string) {
		var raw any
		if json.Unmarshal([]byte(schema), &raw) != nil {
			return
		}
		s, err := compileSchema(raw)
		if err != nil {
			return
		}
		var v any
		if json.Unmarshal([]byte(instance), &v) != nil {
			return
		}
		_ = s.Validate(v)
	})
}
