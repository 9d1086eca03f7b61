package secret

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const value = "s3cr3t-value"

func TestSecretNeverPrints(t *testing.T) {
	s := New(value)
	type holder struct {
		Public  Secret
		private Secret
	}
	h := holder{Public: s, private: s}
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("m", "token", s)
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("m", "token", s, "h", h)
	j, err := json.Marshal(map[string]any{"token": s, "h": h})
	if err != nil {
		t.Fatal(err)
	}
	txt, _ := s.MarshalText()
	outputs := map[string]string{
		"%v":         fmt.Sprintf("%v", s),
		"%s":         fmt.Sprintf("%s", s),
		"%q":         fmt.Sprintf("%q", s),
		"%x":         fmt.Sprintf("%x", s),
		"%#v":        fmt.Sprintf("%#v", s),
		"%+v":        fmt.Sprintf("%+v", h),
		"%#v holder": fmt.Sprintf("%#v", h),
		"%v ptr":     fmt.Sprintf("%v", &s),
		"String":     s.String(),
		"GoString":   s.GoString(),
		"slog":       logged.String(),
		"json":       string(j),
		"text":       string(txt),
		"error":      fmt.Errorf("wrapped %v", s).Error(),
	}
	for name, out := range outputs {
		if strings.Contains(out, value) {
			t.Errorf("%s leaks the value: %s", name, out)
		}
		if !strings.Contains(out, Redacted) {
			t.Errorf("%s = %q, want it to say %s", name, out, Redacted)
		}
	}
	if got := s.Reveal(); got != value {
		t.Errorf("Reveal = %q", got)
	}
}

func TestZero(t *testing.T) {
	var z Secret
	if !z.IsZero() || z.Reveal() != "" || z.String() != Redacted {
		t.Errorf("zero Secret: IsZero=%v Reveal=%q String=%q", z.IsZero(), z.Reveal(), z.String())
	}
	if !New("").IsZero() || New("x").IsZero() {
		t.Error("IsZero wrong for New")
	}
}

func TestParseRef(t *testing.T) {
	tests := []struct {
		ref, kind, target string
		err               string // substring; "" means no error
	}{
		{"env:TOKEN", "env", "TOKEN", ""},
		{"env:_x9", "env", "_x9", ""},
		{"file:/etc/mcpgate/token", "file", "/etc/mcpgate/token", ""},
		{"file:rel/token", "file", "rel/token", ""},
		{"file:C:/odd:but/fine", "file", "C:/odd:but/fine", ""},
		{"", "", "", `secret reference "": want env:NAME or file:PATH`},
		{"TOKEN", "", "", `secret reference "TOKEN": want env:NAME or file:PATH`},
		{"env:", "", "", `"" is not an environment variable name`},
		{"env:9X", "", "", `"9X" is not an environment variable name`},
		{"env:A-B", "", "", `"A-B" is not an environment variable name`},
		{"env:A B", "", "", `is not an environment variable name`},
		{"file:", "", "", "the file path is empty"},
		{"file:a\x00b", "", "", "NUL"},
		{"vault:x", "", "", `unknown kind "vault": want env:NAME or file:PATH`},
		{"ENV:X", "", "", `unknown kind "ENV"`},
	}
	for _, tt := range tests {
		kind, target, err := ParseRef(tt.ref)
		if tt.err == "" {
			if err != nil || kind != tt.kind || target != tt.target {
				t.Errorf("ParseRef(%q) = %q, %q, %v; want %q, %q", tt.ref, kind, target, err, tt.kind, tt.target)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.err) {
			t.Errorf("ParseRef(%q) error = %v, want it to contain %q", tt.ref, err, tt.err)
		}
		if kind != "" || target != "" {
			t.Errorf("ParseRef(%q) returned %q, %q with an error", tt.ref, kind, target)
		}
	}
}

func FuzzParseRef(f *testing.F) {
	for _, s := range []string{"env:X", "file:/a", "file:", "env:", ":", "x:y", "env:a\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ref string) {
		kind, target, err := ParseRef(ref)
		if err != nil {
			if kind != "" || target != "" {
				t.Fatalf("values with an error: %q %q", kind, target)
			}
			return
		}
		if kind+":"+target != ref {
			t.Fatalf("%q split into %q and %q", ref, kind, target)
		}
		switch kind {
		case KindEnv:
			if !envName.MatchString(target) {
				t.Fatalf("accepted env name %q", target)
			}
		case KindFile:
			if target == "" {
				t.Fatal("accepted an empty path")
			}
		default:
			t.Fatalf("accepted kind %q", kind)
		}
	})
}

func writeFile(t *testing.T, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // WriteFile's mode is masked by the umask
		t.Fatal(err)
	}
	return p
}

func TestResolve(t *testing.T) {
	t.Setenv("MCPGATE_TEST_SET", value)
	t.Setenv("MCPGATE_TEST_EMPTY", "")
	big := strings.Repeat("x", MaxFileBytes+1)
	tests := []struct {
		name string
		ref  func(t *testing.T) string
		want string
		err  string
	}{
		{"env set", func(*testing.T) string { return "env:MCPGATE_TEST_SET" }, value, ""},
		{"env unset", func(*testing.T) string { return "env:MCPGATE_TEST_UNSET_XYZ" },
			"", "resolve secret env:MCPGATE_TEST_UNSET_XYZ: environment variable MCPGATE_TEST_UNSET_XYZ is not set"},
		{"env empty", func(*testing.T) string { return "env:MCPGATE_TEST_EMPTY" },
			"", "environment variable MCPGATE_TEST_EMPTY is not set"},
		{"bad ref", func(*testing.T) string { return "nope" }, "", "want env:NAME or file:PATH"},
		{"file", func(t *testing.T) string { return "file:" + writeFile(t, value, 0o600) }, value, ""},
		{"file 0400", func(t *testing.T) string { return "file:" + writeFile(t, value, 0o400) }, value, ""},
		{"file trailing LF", func(t *testing.T) string { return "file:" + writeFile(t, value+"\n", 0o600) }, value, ""},
		{"file trailing CRLF", func(t *testing.T) string { return "file:" + writeFile(t, value+"\r\n", 0o600) }, value, ""},
		{"file only one newline trimmed", func(t *testing.T) string { return "file:" + writeFile(t, value+"\n\n", 0o600) }, value + "\n", ""},
		{"file inner spaces kept", func(t *testing.T) string { return "file:" + writeFile(t, " a b ", 0o600) }, " a b ", ""},
		{"file group readable", func(t *testing.T) string { return "file:" + writeFile(t, value, 0o640) }, "", "chmod 600"},
		{"file other readable", func(t *testing.T) string { return "file:" + writeFile(t, value, 0o604) }, "", "accessible by group or others (mode 0604)"},
		{"file group writable", func(t *testing.T) string { return "file:" + writeFile(t, value, 0o620) }, "", "chmod 600"},
		{"file too large", func(t *testing.T) string { return "file:" + writeFile(t, big, 0o600) }, "", "larger than 65536 bytes"},
		{"file empty", func(t *testing.T) string { return "file:" + writeFile(t, "", 0o600) }, "", "is empty"},
		{"file only newline", func(t *testing.T) string { return "file:" + writeFile(t, "\n", 0o600) }, "", "is empty"},
		{"file missing", func(t *testing.T) string { return "file:" + filepath.Join(t.TempDir(), "none") }, "", "no such file"},
		{"file is a directory", func(t *testing.T) string { return "file:" + t.TempDir() }, "", "not a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ref := tt.ref(t)
			s, err := Resolve(ref)
			if tt.err == "" {
				if err != nil {
					t.Fatalf("Resolve(%q): %v", ref, err)
				}
				if s.Reveal() != tt.want {
					t.Fatalf("Resolve(%q) = %q, want %q", ref, s.Reveal(), tt.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("Resolve(%q) error = %v, want it to contain %q", ref, err, tt.err)
			}
			if strings.Contains(err.Error(), value) {
				t.Fatalf("error leaks the value: %v", err)
			}
			if !s.IsZero() {
				t.Fatal("non-zero Secret with an error")
			}
		})
	}
}

func Example() {
	s := New("hunter2")
	fmt.Println(s)
	fmt.Printf("%v %s %#v\n", s, s, s)
	logger := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{} // keep the output stable
			}
			return a
		},
	}))
	logger.Info("calling upstream", "token", s)
	fmt.Println(len(s.Reveal()))
	// Output:
	// [REDACTED]
	// [REDACTED] [REDACTED] [REDACTED]
	// level=INFO msg="calling upstream" token=[REDACTED]
	// 7
}
