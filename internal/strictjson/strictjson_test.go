package strictjson

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestCheckAccepts(t *testing.T) {
	deep := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	tests := []struct {
		name string
		in   string
	}{
		{"empty object", `{}`},
		{"empty array", `[]`},
		{"empty object ws", " \t\r\n{ \n} \r\n\t"},
		{"scalars", `[true,false,null,0,-0,1.5,-1e10,2E+3,3e-2,"x"]`},
		{"top-level scalar", `"just a string"`},
		{"top-level number", `  42  `},
		{"unicode escapes", `{"k":"\u00e9\u4e2d\u0000\"\\\/\b\f\n\r\t"}`},
		{"surrogate pair", `{"k":"\ud83d\ude00 and \uD834\uDD1E"}`},
		{"raw non-ASCII", `{"ключ":"значение 😀","日本":"語"}`},
		{"literal U+FFFD", "{\"k\":\"\xef\xbf\xbd\"}"},
		{"big integer", `{"n":123456789012345678901234567890123456789}`},
		{"big exponent in range", `[1.7976931348623157e308,-1e308,1e-400]`},
		{"deep but allowed", deep(DefaultMaxDepth)},
		{"deep objects", strings.Repeat(`{"a":`, DefaultMaxDepth-1) + `{}` + strings.Repeat(`}`, DefaultMaxDepth-1)},
		{"non-folding neighbours", `{"a":1,"b":2,"a_":3,"ä":4,"Ä_":5,"ß":6,"ss":7,"ı":8,"i":9}`},
		// Same key in sibling and nested objects is not a duplicate.
		{"same key different objects", `{"a":{"a":1},"b":[{"a":1},{"a":2}],"c":{"a":{"a":{}}}}`},
		{"many keys map path", manyKeys(100, "k%d")},
		{"nul in value", `{"k":"\u0000"}`},
		{"escaped slash key", `{"a/b":1,"a\/c":2}`},
		{"U+2028 raw", "[\"\u2028\u2029\"]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := Check([]byte(tt.in), DefaultLimits()); err != nil {
				t.Fatalf("Check(%q) = %v, want nil", tt.in, err)
			}
			if !json.Valid([]byte(tt.in)) {
				t.Fatalf("test input not valid per encoding/json")
			}
		})
	}
}

func manyKeys(n int, format string) string {
	var b strings.Builder
	b.WriteByte('{')
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"` + fmt.Sprintf(format, i) + `":` + strconv.Itoa(i))
	}
	b.WriteByte('}')
	return b.String()
}

func TestCheckRejects(t *testing.T) {
	small := Limits{MaxBytes: 64, MaxDepth: 3, MaxStringBytes: 8, MaxObjectMembers: 3, MaxArrayLen: 3}
	tests := []struct {
		name   string
		in     string
		lim    Limits // zero: defaults
		reason string // substring of Reason
		offset int
	}{
		// syntax
		{"empty", ``, Limits{}, "empty input", 0},
		{"only ws", "  \n", Limits{}, "empty input", 3},
		{"unterminated object", `{"a":1`, Limits{}, "unexpected end of input after object member", 6},
		{"unterminated string", `{"a":"x`, Limits{}, "unterminated string", 5},
		{"missing colon", `{"a" 1}`, Limits{}, "unexpected character '1' after object key", 5},
		{"trailing comma object", `{"a":1,}`, Limits{}, "looking for object key", 7},
		{"trailing comma array", `[1,]`, Limits{}, "looking for value", 3},
		{"unquoted key", `{a:1}`, Limits{}, "looking for object key", 1},
		{"single quotes", `{'a':1}`, Limits{}, "looking for object key", 1},
		{"bad literal", `[tru]`, Limits{}, "invalid literal, expected true", 1},
		{"Nan", `[NaN]`, Limits{}, "unexpected character 'N'", 1},
		{"comment", `{} // x`, Limits{}, "trailing data", 3},
		{"control char in string", "[\"a\tb\"]", Limits{}, "unescaped control character 0x09", 3},
		{"bad escape", `["\x"]`, Limits{}, "invalid escape", 2},
		{"short unicode escape", `["\u12"]`, Limits{}, "invalid \\u escape", 2},
		{"non-hex unicode escape", `["\u12g4"]`, Limits{}, "invalid \\u escape", 2},
		{"missing comma", `[1 2]`, Limits{}, "after array element", 3},
		// numbers
		{"leading zero", `[01]`, Limits{}, "unexpected character '1' after array element", 2},
		{"leading plus", `[+1]`, Limits{}, "unexpected character '+'", 1},
		{"bare minus", `[-]`, Limits{}, "invalid number", 1},
		{"trailing dot", `[1.]`, Limits{}, "invalid number", 1},
		{"leading dot", `[.5]`, Limits{}, "unexpected character '.'", 1},
		{"empty exponent", `[1e]`, Limits{}, "invalid number", 1},
		{"hex", `[0x10]`, Limits{}, "unexpected character 'x'", 2},
		{"overflow", `[1e400]`, Limits{}, "number out of range", 1},
		{"overflow digits", `[` + strings.Repeat("9", 400) + `]`, Limits{}, "number out of range", 1},
		// encoding
		{"BOM", "\xef\xbb\xbf{}", Limits{}, "byte order mark", 0},
		{"invalid UTF-8 in string", "[\"a\xffb\"]", Limits{}, "invalid UTF-8 in string", 3},
		{"invalid UTF-8 in key", "{\"\xc3\":1}", Limits{}, "invalid UTF-8 in string", 2},
		{"invalid UTF-8 outside", "[1,\xff]", Limits{}, "invalid UTF-8", 3},
		{"UTF-8 encoded surrogate", "[\"\xed\xa0\x80\"]", Limits{}, "invalid UTF-8 in string", 2},
		{"overlong UTF-8", "[\"\xc0\xaf\"]", Limits{}, "invalid UTF-8 in string", 2},
		{"non-ASCII outside string", "[1,é]", Limits{}, "unexpected character U+00E9", 3},
		{"lone high surrogate", `["\ud800"]`, Limits{}, "lone surrogate escape \\ud800", 2},
		{"lone low surrogate", `["\udc00"]`, Limits{}, "lone surrogate escape \\udc00", 2},
		{"high then non-low", `["\ud800\u0041"]`, Limits{}, "lone surrogate", 2},
		{"high then bad escape", `["\ud800\u00zz"]`, Limits{}, "invalid \\u escape", 8},
		{"two highs", `["\ud800\ud800"]`, Limits{}, "lone surrogate", 2},
		{"lone surrogate in key", `{"\ud800":1}`, Limits{}, "lone surrogate", 2},
		// trailing
		{"trailing value", `{}{}`, Limits{}, "trailing data after top-level value", 2},
		{"trailing garbage", `{} x`, Limits{}, "trailing data", 3},
		{"trailing NUL", "{}\x00", Limits{}, "trailing data", 2},
		// keys
		{"duplicate", `{"a":1,"a":2}`, Limits{}, `duplicate key "a" at $`, 7},
		{"duplicate escaped", `{"a":1,"\u0061":2}`, Limits{}, `duplicate key "a" at $`, 7},
		{"duplicate nested path", `{"params":{"arguments":[{"x":1,"y":2,"x":3}]}}`, Limits{}, `duplicate key "x" at $.params.arguments[0]`, 37},
		{"case variant", `{"name":1,"Name":2}`, Limits{}, `case-variant key "Name" beside "name" at $`, 10},
		{"long s", "{\"params\":{},\"param\u017f\":{}}", Limits{}, `case-variant key "paramſ" beside "params" at $`, 13},
		{"long s escaped", `{"params":{},"param\u017f":{}}`, Limits{}, `case-variant key "paramſ" beside "params" at $`, 13},
		{"kelvin", "{\"k\":1,\"\u212a\":2}", Limits{}, "case-variant key \"\u212a\" beside \"k\" at $", 7},
		{"kelvin vs upper", "{\"\u212a\":1,\"K\":2}", Limits{}, "case-variant key \"K\" beside \"\u212a\" at $", 9},
		{"kelvin escaped", `{"\u212a":1,"\u212A":2}`, Limits{}, "duplicate key \"\u212a\" at $", 12},
		{"non-ASCII fold", `{"ÄÖ":1,"äö":2}`, Limits{}, `case-variant key "äö" beside "ÄÖ"`, 10},
		{"greek sigma", `{"Σ":1,"ς":2}`, Limits{}, `case-variant key "ς" beside "Σ"`, 8},
		{"dup in large object", manyKeys(40, "k%d")[:len(manyKeys(40, "k%d"))-1] + `,"K39":0}`, Limits{}, `case-variant key "K39" beside "k39" at $`, -2},
		{"dup early in large object", `{"z":0,` + manyKeys(40, "k%d")[1:len(manyKeys(40, "k%d"))-1] + `,"Z":0}`, Limits{}, `case-variant key "Z" beside "z" at $`, -2},
		{"NUL key", `{"a\u0000b":1}`, Limits{}, `key contains NUL at $`, 1},
		{"NUL key nested", `{"p":{"\u0000":1}}`, Limits{}, `key contains NUL at $.p`, 6},
		{"odd key in path", `{"a b":{"c":1,"c":1}}`, Limits{}, `duplicate key "c" at $["a b"]`, 14},
		// limits
		{"too many bytes", `{"a":"` + strings.Repeat("x", 60) + `"}`, small, "body larger than 64 bytes", -1},
		{"too deep", `[[[[]]]]`, small, "nesting deeper than 3 at $[0][0][0]", 3},
		{"too deep objects", `{"a":{"b":{"c":{}}}}`, small, "nesting deeper than 3 at $.a.b.c", 15},
		{"string too long", `["123456789"]`, small, "string longer than 8 bytes", 1},
		{"key too long", `{"123456789":1}`, small, "string longer than 8 bytes", 1},
		{"escapes count decoded", `["\u00e9\u00e9\u00e9\u00e9x"]`, small, "string longer than 8 bytes", 1},
		{"too many members", `{"a":1,"b":2,"c":3,"d":4}`, small, "object has more than 3 members at $", 19},
		{"array too long", `[1,2,3,4]`, small, "array longer than 3 elements at $", 7},
		{"array too long nested", `{"x":[[1,2,3,4]]}`, small, "array longer than 3 elements at $.x[0]", 13},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Check([]byte(tt.in), tt.lim)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Check(%q) = %v, want *Error", tt.in, err)
			}
			if e.Code != CodeParseError {
				t.Errorf("Code = %d, want %d", e.Code, CodeParseError)
			}
			if !strings.Contains(e.Reason, tt.reason) {
				t.Errorf("Reason = %q, want it to contain %q", e.Reason, tt.reason)
			}
			if tt.offset != -2 && e.Offset != tt.offset {
				t.Errorf("Offset = %d, want %d (reason %q)", e.Offset, tt.offset, e.Reason)
			}
		})
	}
}

func TestLimitsZeroMeansDefault(t *testing.T) {
	if got := (Limits{}).withDefaults(); got != DefaultLimits() {
		t.Fatalf("zero Limits = %+v, want %+v", got, DefaultLimits())
	}
	if got := (Limits{MaxDepth: -1, MaxArrayLen: 7}).withDefaults(); got.MaxDepth != DefaultMaxDepth || got.MaxArrayLen != 7 {
		t.Fatalf("got %+v", got)
	}
	if err := Check([]byte(strings.Repeat("[", DefaultMaxDepth+1)+strings.Repeat("]", DefaultMaxDepth+1)), Limits{}); err == nil {
		t.Fatal("zero Limits must still enforce default depth")
	}
}

func TestErrorString(t *testing.T) {
	if got := (&Error{Code: -32700, Offset: 3, Reason: "x"}).Error(); got != "strictjson: x (offset 3)" {
		t.Errorf("got %q", got)
	}
	if got := (&Error{Code: -32700, Offset: -1, Reason: "x"}).Error(); got != "strictjson: x" {
		t.Errorf("got %q", got)
	}
}

// Long client-chosen keys are not echoed in full.
func TestReasonTruncatesKeys(t *testing.T) {
	k := strings.Repeat("é", 100)
	err := Check([]byte(`{"`+k+`":1,"`+k+`":2}`), DefaultLimits())
	var e *Error
	if !errors.As(err, &e) || len(e.Reason) > 200 || !strings.Contains(e.Reason, `..."`) && !strings.Contains(e.Reason, `"...`) {
		t.Fatalf("got %v", err)
	}
	if !utf8.ValidString(e.Reason) {
		t.Fatalf("reason not valid UTF-8: %q", e.Reason)
	}
}

// appendFold must agree with strings.EqualFold for every rune, including
// the non-ASCII members of ASCII letters' orbits (U+017F, U+212A).
func TestFoldMatchesEqualFold(t *testing.T) {
	for r := rune(0); r <= unicode.MaxRune; r++ {
		if r >= 0xd800 && r <= 0xdfff {
			continue
		}
		f := foldRune(r)
		if !strings.EqualFold(string(r), string(f)) {
			t.Fatalf("foldRune(%U) = %U, not EqualFold", r, f)
		}
		for g := unicode.SimpleFold(r); g != r; g = unicode.SimpleFold(g) {
			if foldRune(g) != f {
				t.Fatalf("foldRune(%U) = %U but foldRune(%U) = %U", r, f, g, foldRune(g))
			}
		}
		if r < utf8.RuneSelf {
			if got := appendFold(nil, []byte{byte(r)}); string(got) != string(f) {
				t.Fatalf("ASCII fast path %q -> %q, want %q", r, got, string(f))
			}
		}
	}
}

// The common case must not allocate; see also the benchmarks.
func TestCheckAllocs(t *testing.T) {
	body := []byte(typicalCall)
	if n := testing.AllocsPerRun(100, func() { _ = Check(body, DefaultLimits()) }); n > 1 {
		t.Errorf("Check allocates %v times per call, want 1", n)
	}
}

// specialInWord must flag a word exactly when one of its bytes would stop
// the byte-at-a-time loop.
func TestSpecialInWord(t *testing.T) {
	special := func(c byte) bool { return c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf }
	for c := range 256 {
		for pos := range 8 {
			for _, fill := range []byte{'a', ' ', '!', '#', '[', ']', '~', 0x7f} {
				var w [8]byte
				for i := range w {
					w[i] = fill
				}
				w[pos] = byte(c)
				x := uint64(0)
				for i := 7; i >= 0; i-- {
					x = x<<8 | uint64(w[i])
				}
				if got := specialInWord(x); got != special(byte(c)) {
					t.Fatalf("specialInWord(%q) = %v", w, got)
				}
			}
		}
	}
}
