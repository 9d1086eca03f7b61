package audit

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
)

// Redacted replaces what a Redactor removes.
const Redacted = "[REDACTED]"

// Why arguments were left out of a record (Event.ArgumentsOmitted).
const (
	OmittedTooLarge = "too_large" // larger than the cap after redaction
	OmittedInvalid  = "invalid"   // not a JSON value (the strict gate normally refuses these first)
)

// Redactor prepares a call's arguments for the audit log: the values of
// sensitive keys and the matches of sensitive patterns are replaced by
// Redacted, and the result is capped in size. It is safe for concurrent
// use.
type Redactor struct {
	keys     map[string]bool // lower-cased
	patterns []*regexp.Regexp
	maxBytes int
}

// NewRedactor makes a Redactor; keys compare case-insensitively at any
// depth, patterns apply to every string value.
func NewRedactor(keys []string, patterns []*regexp.Regexp, maxBytes int) *Redactor {
	r := &Redactor{keys: map[string]bool{}, patterns: patterns, maxBytes: maxBytes}
	for _, k := range keys {
		r.keys[strings.ToLower(k)] = true
	}
	return r
}

// Apply returns the redacted arguments, or nil and why they were left out.
// Numbers keep their text; object keys come out sorted.
func (r *Redactor) Apply(raw json.RawMessage) (json.RawMessage, string) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil || dec.More() {
		return nil, OmittedInvalid
	}
	v = r.walk(v)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, OmittedInvalid
	}
	out := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	if len(out) > r.maxBytes {
		return nil, OmittedTooLarge
	}
	return json.RawMessage(out), ""
}

func (r *Redactor) walk(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, val := range v {
			if r.keys[strings.ToLower(k)] {
				v[k] = Redacted
				continue
			}
			v[k] = r.walk(val)
		}
		return v
	case []any:
		for i, val := range v {
			v[i] = r.walk(val)
		}
		return v
	case string:
		for _, p := range r.patterns {
			v = p.ReplaceAllLiteralString(v, Redacted)
		}
		return v
	default:
		return v
	}
}
