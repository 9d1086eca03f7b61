package audit

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
)

func TestRedactor(t *testing.T) {
	r := NewRedactor([]string{"password", "Token"}, []*regexp.Regexp{regexp.MustCompile(`sk-[A-Za-z0-9]{8,}`)}, 200)
	for _, tc := range []struct {
		name, in, want, omitted string
	}{
		{"plain", `{"path":"/srv/a","n":7}`, `{"n":7,"path":"/srv/a"}`, ""},
		{"key at any depth, any case", `{"db":{"PASSWORD":"hunter2","user":"u"},"list":[{"token":{"x":1}}]}`,
			`{"db":{"PASSWORD":"[REDACTED]","user":"u"},"list":[{"token":"[REDACTED]"}]}`, ""},
		{"pattern in strings", `{"note":"key sk-abcdefgh12 and sk-zzzzzzzzzz","k":["sk-12345678"]}`,
			`{"k":["[REDACTED]"],"note":"key [REDACTED] and [REDACTED]"}`, ""},
		{"numbers keep their text", `{"big":12345678901234567890,"f":1.50}`, `{"big":12345678901234567890,"f":1.50}`, ""},
		{"no HTML escaping", `{"q":"a<b>&c"}`, `{"q":"a<b>&c"}`, ""},
		{"too large", `{"blob":"` + strings.Repeat("x", 300) + `"}`, "", OmittedTooLarge},
		{"not JSON", `{"a":`, "", OmittedInvalid},
		{"two values", `{} {}`, "", OmittedInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, omitted := r.Apply(json.RawMessage(tc.in))
			if string(got) != tc.want || omitted != tc.omitted {
				t.Fatalf("Apply(%s) = %s, %q; want %s, %q", tc.in, got, omitted, tc.want, tc.omitted)
			}
		})
	}
}

// FuzzRedactor: whatever the arguments, the output is valid JSON within the
// cap, no value under a sensitive key survives, and no pattern match does.
func FuzzRedactor(f *testing.F) {
	f.Add(`{"password":"p","a":{"Token":"t"},"s":"sk-abcdefgh1"}`)
	f.Add(`[1,"x",{"b":null}]`)
	f.Add(`"sk-sk-abcdefgh1abcdefgh1"`)
	pattern := regexp.MustCompile(`sk-[A-Za-z0-9]{8,}`)
	r := NewRedactor([]string{"password", "token"}, []*regexp.Regexp{pattern}, 4096)
	f.Fuzz(func(t *testing.T, in string) {
		out, omitted := r.Apply(json.RawMessage(in))
		if omitted != "" {
			if out != nil {
				t.Fatalf("omitted %q but returned %s", omitted, out)
			}
			return
		}
		if len(out) > 4096 || !json.Valid(out) {
			t.Fatalf("Apply(%q) = %q: invalid or over the cap", in, out)
		}
		var v any
		if err := json.Unmarshal(out, &v); err != nil {
			t.Fatal(err)
		}
		var check func(any)
		check = func(v any) {
			switch v := v.(type) {
			case map[string]any:
				for k, val := range v {
					lk := strings.ToLower(k)
					if (lk == "password" || lk == "token") && val != Redacted {
						t.Fatalf("key %q kept %v in %s", k, val, out)
					}
					check(val)
				}
			case []any:
				for _, val := range v {
					check(val)
				}
			case string:
				if pattern.MatchString(v) {
					t.Fatalf("string %q still matches the pattern in %s", v, out)
				}
			}
		}
		check(v)
	})
}
