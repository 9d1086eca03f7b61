// Package secret holds credentials so that they never print, and resolves the
// references a config names them by ("env:NAME", "file:PATH").
//
// A Secret formats as [REDACTED] through fmt (%v, %s, %#v, %q), log/slog,
// encoding/json and encoding.TextMarshaler; only Reveal returns the value, so
// every place a credential is used is a call to Reveal one can grep for.
// Errors from this package never contain a secret's value.
package secret

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"regexp"
	"strings"
)

// Redacted is what a Secret prints as.
const Redacted = "[REDACTED]"

// MaxFileBytes bounds a secret file; a larger one is surely the wrong file.
const MaxFileBytes = 64 << 10

// Secret is a string that never prints. The zero Secret is empty.
type Secret struct {
	// A pointer, so that even a printer that cannot call the methods below
	// (fmt on an unexported struct field holding a Secret) shows an address,
	// not the value.
	v *string
}

// New wraps s.
func New(s string) Secret { return Secret{v: &s} }

// Reveal returns the value. Call it only where the value is sent on.
func (s Secret) Reveal() string {
	if s.v == nil {
		return ""
	}
	return *s.v
}

// IsZero reports whether the secret is empty.
func (s Secret) IsZero() bool { return s.Reveal() == "" }

// String returns [REDACTED].
func (s Secret) String() string { return Redacted }

// GoString returns [REDACTED], for %#v.
func (s Secret) GoString() string { return Redacted }

// Format prints [REDACTED] for every verb, so that no verb (%x, %d, ...)
// reaches the value.
func (s Secret) Format(f fmt.State, verb rune) {
	if verb == 'q' {
		fmt.Fprintf(f, "%q", Redacted)
		return
	}
	io.WriteString(f, Redacted)
}

// LogValue returns [REDACTED], for log/slog.
func (s Secret) LogValue() slog.Value { return slog.StringValue(Redacted) }

// MarshalJSON returns "[REDACTED]".
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + Redacted + `"`), nil }

// MarshalText returns [REDACTED].
func (s Secret) MarshalText() ([]byte, error) { return []byte(Redacted), nil }

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Reference kinds returned by ParseRef.
const (
	KindEnv  = "env"
	KindFile = "file"
)

// ParseRef splits a secret reference into its kind (KindEnv or KindFile) and
// target: "env:NAME" with NAME a valid environment variable name, or
// "file:PATH" with a non-empty PATH.
func ParseRef(ref string) (kind, target string, err error) {
	kind, target, ok := strings.Cut(ref, ":")
	if !ok {
		return "", "", fmt.Errorf("secret reference %q: want env:NAME or file:PATH", ref)
	}
	switch kind {
	case KindEnv:
		if !envName.MatchString(target) {
			return "", "", fmt.Errorf("secret reference %q: %q is not an environment variable name (letters, digits and _, not starting with a digit)", ref, target)
		}
	case KindFile:
		if target == "" {
			return "", "", fmt.Errorf("secret reference %q: the file path is empty", ref)
		}
		if strings.ContainsRune(target, 0) {
			return "", "", fmt.Errorf("secret reference %q: the file path contains a NUL byte", ref)
		}
	default:
		return "", "", fmt.Errorf("secret reference %q: unknown kind %q: want env:NAME or file:PATH", ref, kind)
	}
	return kind, target, nil
}

// Resolve reads the secret ref names. An environment variable must be set
// and non-empty. A file must be a regular file no larger than MaxFileBytes,
// readable by its owner only (mode&0o077 == 0); one trailing newline ("\n"
// or "\r\n") is trimmed, and what remains must not be empty.
func Resolve(ref string) (Secret, error) {
	kind, target, err := ParseRef(ref)
	if err != nil {
		return Secret{}, err
	}
	if kind == KindEnv {
		v := os.Getenv(target)
		if v == "" {
			return Secret{}, fmt.Errorf("resolve secret %s: environment variable %s is not set", ref, target)
		}
		return New(v), nil
	}
	v, err := readFile(target)
	if err != nil {
		return Secret{}, fmt.Errorf("resolve secret %s: %w", ref, err)
	}
	return New(v), nil
}

func readFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err // names the path and the cause, never the content
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	switch {
	case !fi.Mode().IsRegular():
		return "", fmt.Errorf("%s is not a regular file", path)
	case fi.Mode().Perm()&0o077 != 0:
		return "", fmt.Errorf("%s is accessible by group or others (mode %04o): chmod 600 it", path, fi.Mode().Perm())
	case fi.Size() > MaxFileBytes:
		return "", fmt.Errorf("%s is larger than %d bytes", path, MaxFileBytes)
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return "", err
	}
	if len(data) > MaxFileBytes {
		return "", fmt.Errorf("%s is larger than %d bytes", path, MaxFileBytes)
	}
	s := string(data)
	if t, ok := strings.CutSuffix(s, "\r\n"); ok {
		s = t
	} else {
		s = strings.TrimSuffix(s, "\n")
	}
	if s == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return s, nil
}
