package pin

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Kind is the kind of a definition an upstream serves.
type Kind string

// The kinds of definitions that are pinned.
const (
	Tool             Kind = "tool"
	Prompt           Kind = "prompt"
	ResourceTemplate Kind = "resource_template"
)

// valid reports whether k is one of the kinds above.
func (k Kind) valid() bool {
	return k == Tool || k == Prompt || k == ResourceTemplate
}

// pinnedFields are, per kind, the top-level fields that define a
// definition; everything else (_meta, icons, execution, unknown fields) is
// dropped before hashing.
var pinnedFields = map[Kind]map[string]bool{
	Tool:             set("name", "title", "description", "inputSchema", "outputSchema", "annotations"),
	Prompt:           set("name", "title", "description", "arguments"),
	ResourceTemplate: set("name", "title", "description", "uriTemplate", "mimeType", "annotations"),
}

func set(s ...string) map[string]bool {
	m := make(map[string]bool, len(s))
	for _, x := range s {
		m[x] = true
	}
	return m
}

// Definition is one definition as an upstream served it.
type Definition struct {
	Upstream string          // the config's upstream name
	Kind     Kind            // what it is
	Name     string          // the upstream's own name for it (not the gateway's prefixed one)
	Raw      json.RawMessage // the definition object as the upstream sent it (a Tool, Prompt or ResourceTemplate JSON object)
}

// Canonical returns the definition's pinned content: a JSON object holding
// only the fields that define it — tool: name, title, description,
// inputSchema, outputSchema, annotations; prompt: name, title, description,
// arguments; resource template: name, title, description, uriTemplate,
// mimeType, annotations (absent fields omitted, and so are top-level fields
// whose value is null; _meta, icons and anything else dropped) — serialized
// canonically as RFC 8785 (JCS) specifies: object keys sorted by UTF-16 code
// units, no insignificant whitespace, strings escaped minimally, numbers in
// the ECMAScript shortest round-trip form. Nested objects (schemas) are
// canonicalized recursively, keys and all.
//
// The input must be I-JSON (RFC 7493): invalid JSON, invalid UTF-8, a
// duplicate key, an escaped lone surrogate or a number beyond the float64
// range is an error naming the problem. Nesting deeper than 512 levels is
// rejected too.
//
// As in RFC 8785, every number is an IEEE 754 double: integers beyond 2^53
// are rounded to the nearest double (9007199254740993 becomes
// 9007199254740992), so two definitions differing only there share a digest.
func Canonical(kind Kind, raw json.RawMessage) ([]byte, error) {
	b, _, err := canonical(kind, raw)
	return b, err
}

// Digest is "sha256:" + hex of SHA-256(Canonical(kind, raw)).
func Digest(kind Kind, raw json.RawMessage) (string, error) {
	b, err := Canonical(kind, raw)
	if err != nil {
		return "", err
	}
	return digestOf(b), nil
}

func digestOf(canon []byte) string {
	sum := sha256.Sum256(canon)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// canonical returns the canonical bytes and the filtered, sorted tree.
func canonical(kind Kind, raw json.RawMessage) ([]byte, *node, error) {
	if !kind.valid() {
		return nil, nil, fmt.Errorf("pin: unknown kind %q", string(kind))
	}
	n, err := parseJSON(raw)
	if err != nil {
		return nil, nil, err
	}
	if n.kind != kindObject {
		return nil, nil, fmt.Errorf("pin: a %s definition must be a JSON object, not %s", kind, n.kindName())
	}
	n = pick(kind, n)
	var buf bytes.Buffer
	buf.Grow(len(raw))
	writeCanonical(&buf, n)
	return buf.Bytes(), n, nil
}

// pick keeps the pinned, non-null top-level fields of a definition object.
func pick(kind Kind, n *node) *node {
	keep := pinnedFields[kind]
	out := &node{kind: kindObject}
	for _, m := range n.obj {
		if keep[m.key] && m.val.kind != kindNull {
			out.obj = append(out.obj, m)
		}
	}
	return out
}

// node is a parsed JSON value; objects' members are sorted by key in
// UTF-16 code unit order once parsed.
type node struct {
	kind byte
	str  string // a string's value; a number's canonical form
	arr  []*node
	obj  []member
}

type member struct {
	key string
	val *node
}

const (
	kindNull byte = iota
	kindTrue
	kindFalse
	kindNumber
	kindString
	kindArray
	kindObject
)

func (n *node) kindName() string {
	switch n.kind {
	case kindNull:
		return "null"
	case kindTrue, kindFalse:
		return "a boolean"
	case kindNumber:
		return "a number"
	case kindString:
		return "a string"
	case kindArray:
		return "an array"
	}
	return "an object"
}

// field returns the member of an object named key, or nil.
func (n *node) field(key string) *node {
	if n == nil || n.kind != kindObject {
		return nil
	}
	for _, m := range n.obj {
		if m.key == key {
			return m.val
		}
	}
	return nil
}

// maxDepth bounds nesting, so hostile input cannot exhaust the stack.
const maxDepth = 512

type parser struct {
	data []byte
	pos  int
}

// syntaxError is a JSON parse error with its byte offset.
type syntaxError struct {
	msg    string
	offset int
}

func (e *syntaxError) Error() string {
	return fmt.Sprintf("pin: invalid JSON at byte %d: %s", e.offset, e.msg)
}

func (p *parser) fail(format string, a ...any) error {
	return &syntaxError{msg: fmt.Sprintf(format, a...), offset: p.pos}
}

// parseJSON parses one JSON value (I-JSON) with nothing but whitespace
// around it.
func parseJSON(data []byte) (*node, error) {
	p := &parser{data: data}
	p.skipSpace()
	if p.pos == len(data) {
		return nil, p.fail("empty input")
	}
	n, err := p.value(0)
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	if p.pos != len(data) {
		return nil, p.fail("unexpected %s after the value", p.describe())
	}
	return n, nil
}

func (p *parser) skipSpace() {
	for p.pos < len(p.data) {
		switch p.data[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

// describe names the byte at pos for an error message.
func (p *parser) describe() string {
	if p.pos >= len(p.data) {
		return "end of input"
	}
	c := p.data[p.pos]
	if c >= 0x20 && c < 0x7f {
		return fmt.Sprintf("%q", rune(c))
	}
	return fmt.Sprintf("byte 0x%02x", c)
}

func (p *parser) value(depth int) (*node, error) {
	if depth > maxDepth {
		return nil, p.fail("nesting deeper than %d levels", maxDepth)
	}
	if p.pos >= len(p.data) {
		return nil, p.fail("unexpected end of input")
	}
	switch c := p.data[p.pos]; {
	case c == '{':
		return p.object(depth)
	case c == '[':
		return p.array(depth)
	case c == '"':
		s, err := p.string()
		if err != nil {
			return nil, err
		}
		return &node{kind: kindString, str: s}, nil
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	case c == 't':
		return p.literal("true", kindTrue)
	case c == 'f':
		return p.literal("false", kindFalse)
	case c == 'n':
		return p.literal("null", kindNull)
	}
	return nil, p.fail("unexpected %s, want a value", p.describe())
}

func (p *parser) literal(word string, kind byte) (*node, error) {
	if !bytes.HasPrefix(p.data[p.pos:], []byte(word)) {
		return nil, p.fail("invalid literal, want %s", word)
	}
	p.pos += len(word)
	return &node{kind: kind}, nil
}

func (p *parser) object(depth int) (*node, error) {
	p.pos++ // {
	n := &node{kind: kindObject}
	var seen map[string]bool
	p.skipSpace()
	if p.pos < len(p.data) && p.data[p.pos] == '}' {
		p.pos++
		return n, nil
	}
	for {
		p.skipSpace()
		if p.pos >= len(p.data) || p.data[p.pos] != '"' {
			return nil, p.fail("unexpected %s, want an object key", p.describe())
		}
		at := p.pos
		key, err := p.string()
		if err != nil {
			return nil, err
		}
		if seen == nil {
			seen = make(map[string]bool)
		}
		if seen[key] {
			return nil, &syntaxError{msg: fmt.Sprintf("duplicate key %q", key), offset: at}
		}
		seen[key] = true
		p.skipSpace()
		if p.pos >= len(p.data) || p.data[p.pos] != ':' {
			return nil, p.fail("unexpected %s after object key %q, want ':'", p.describe(), key)
		}
		p.pos++
		p.skipSpace()
		v, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		n.obj = append(n.obj, member{key: key, val: v})
		p.skipSpace()
		if p.pos >= len(p.data) {
			return nil, p.fail("unexpected end of input in an object")
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
		case '}':
			p.pos++
			sortMembers(n.obj)
			return n, nil
		default:
			return nil, p.fail("unexpected %s in an object, want ',' or '}'", p.describe())
		}
	}
}

func (p *parser) array(depth int) (*node, error) {
	p.pos++ // [
	n := &node{kind: kindArray}
	p.skipSpace()
	if p.pos < len(p.data) && p.data[p.pos] == ']' {
		p.pos++
		return n, nil
	}
	for {
		p.skipSpace()
		v, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		n.arr = append(n.arr, v)
		p.skipSpace()
		if p.pos >= len(p.data) {
			return nil, p.fail("unexpected end of input in an array")
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
		case ']':
			p.pos++
			return n, nil
		default:
			return nil, p.fail("unexpected %s in an array, want ',' or ']'", p.describe())
		}
	}
}

// string parses a JSON string at pos (which holds '"').
func (p *parser) string() (string, error) {
	start := p.pos
	p.pos++
	// Fast path: no escapes.
	i := p.pos
	for i < len(p.data) {
		c := p.data[i]
		if c == '"' {
			s := p.data[p.pos:i]
			if !utf8.Valid(s) {
				return "", p.invalidUTF8(p.pos, i)
			}
			p.pos = i + 1
			return string(s), nil
		}
		if c == '\\' || c < 0x20 {
			break
		}
		i++
	}
	var b strings.Builder
	b.Write(p.data[p.pos:i])
	p.pos = i
	for {
		if p.pos >= len(p.data) {
			p.pos = start
			return "", p.fail("unterminated string")
		}
		c := p.data[p.pos]
		switch {
		case c == '"':
			p.pos++
			s := b.String()
			if !utf8.ValidString(s) {
				return "", &syntaxError{msg: "invalid UTF-8 in a string", offset: start}
			}
			return s, nil
		case c < 0x20:
			return "", p.fail("control character 0x%02x in a string (must be escaped)", c)
		case c == '\\':
			if p.pos+1 >= len(p.data) {
				return "", p.fail("unterminated escape")
			}
			e := p.data[p.pos+1]
			switch e {
			case '"', '\\', '/':
				b.WriteByte(e)
				p.pos += 2
			case 'b':
				b.WriteByte('\b')
				p.pos += 2
			case 'f':
				b.WriteByte('\f')
				p.pos += 2
			case 'n':
				b.WriteByte('\n')
				p.pos += 2
			case 'r':
				b.WriteByte('\r')
				p.pos += 2
			case 't':
				b.WriteByte('\t')
				p.pos += 2
			case 'u':
				r, err := p.unicodeEscape()
				if err != nil {
					return "", err
				}
				b.WriteRune(r)
			default:
				return "", p.fail("invalid escape \\%c", rune(e))
			}
		default:
			b.WriteByte(c)
			p.pos++
		}
	}
}

func (p *parser) invalidUTF8(from, to int) error {
	for i := from; i < to; {
		r, size := utf8.DecodeRune(p.data[i:to])
		if r == utf8.RuneError && size <= 1 {
			return &syntaxError{msg: "invalid UTF-8 in a string", offset: i}
		}
		i += size
	}
	return &syntaxError{msg: "invalid UTF-8 in a string", offset: from}
}

// hex4 reads the four hex digits of a \u escape at pos (which holds '\').
func (p *parser) hex4() (rune, error) {
	if p.pos+6 > len(p.data) {
		return 0, p.fail("truncated \\u escape")
	}
	v, err := strconv.ParseUint(string(p.data[p.pos+2:p.pos+6]), 16, 16)
	if err != nil {
		return 0, p.fail("invalid \\u escape %q", p.data[p.pos:p.pos+6])
	}
	return rune(v), nil
}

func (p *parser) unicodeEscape() (rune, error) {
	r, err := p.hex4()
	if err != nil {
		return 0, err
	}
	switch {
	case utf16.IsSurrogate(r) && r < 0xdc00: // high surrogate: a low one must follow
		at := p.pos
		p.pos += 6
		if p.pos+1 < len(p.data) && p.data[p.pos] == '\\' && p.data[p.pos+1] == 'u' {
			r2, err := p.hex4()
			if err != nil {
				return 0, err
			}
			if r2 >= 0xdc00 && r2 <= 0xdfff {
				p.pos += 6
				return utf16.DecodeRune(r, r2), nil
			}
		}
		return 0, &syntaxError{msg: fmt.Sprintf("lone surrogate \\u%04x", r), offset: at}
	case utf16.IsSurrogate(r):
		return 0, p.fail("lone surrogate \\u%04x", r)
	}
	p.pos += 6
	return r, nil
}

// number parses a JSON number and keeps its canonical (ECMAScript) form.
func (p *parser) number() (*node, error) {
	start := p.pos
	i := p.pos
	d := p.data
	if i < len(d) && d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && d[i] >= '1' && d[i] <= '9':
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	default:
		p.pos = i
		return nil, p.fail("invalid number")
	}
	if i < len(d) && d[i] == '.' {
		i++
		if i >= len(d) || d[i] < '0' || d[i] > '9' {
			p.pos = i
			return nil, p.fail("invalid number: no digit after '.'")
		}
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if i >= len(d) || d[i] < '0' || d[i] > '9' {
			p.pos = i
			return nil, p.fail("invalid number: no digit in the exponent")
		}
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	}
	lit := string(d[start:i])
	f, err := strconv.ParseFloat(lit, 64)
	if err != nil || math.IsInf(f, 0) {
		return nil, &syntaxError{msg: fmt.Sprintf("number %s is beyond the float64 range", abbreviate(lit, 40)), offset: start}
	}
	p.pos = i
	return &node{kind: kindNumber, str: formatNumber(f)}, nil
}

func abbreviate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// formatNumber serializes f as ECMAScript's Number.prototype.toString does
// (RFC 8785 section 3.2.2.3): the shortest digits that round-trip, in
// plain notation for exponents in [-7, 21) and as d.ddde±x otherwise.
func formatNumber(f float64) string {
	if f == 0 {
		return "0" // -0 too
	}
	e := strconv.FormatFloat(f, 'e', -1, 64) // [-]d[.ddd]e±xx
	neg := e[0] == '-'
	if neg {
		e = e[1:]
	}
	ePos := strings.IndexByte(e, 'e')
	mant, exp := e[:ePos], e[ePos+1:]
	digits := strings.Replace(mant, ".", "", 1)
	x, _ := strconv.Atoi(exp)
	k := len(digits)
	n := x + 1 // the decimal point sits after n digits
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	switch {
	case k <= n && n <= 21:
		b.WriteString(digits)
		b.WriteString(strings.Repeat("0", n-k))
	case 0 < n && n <= 21:
		b.WriteString(digits[:n])
		b.WriteByte('.')
		b.WriteString(digits[n:])
	case -6 < n && n <= 0:
		b.WriteString("0.")
		b.WriteString(strings.Repeat("0", -n))
		b.WriteString(digits)
	default:
		b.WriteByte(digits[0])
		if k > 1 {
			b.WriteByte('.')
			b.WriteString(digits[1:])
		}
		b.WriteByte('e')
		if n-1 >= 0 {
			b.WriteByte('+')
		}
		b.WriteString(strconv.Itoa(n - 1))
	}
	return b.String()
}

// sortMembers sorts object members by key in UTF-16 code unit order.
func sortMembers(ms []member) {
	if len(ms) < 2 {
		return
	}
	sort.Slice(ms, func(i, j int) bool { return lessUTF16(ms[i].key, ms[j].key) })
}

// lessUTF16 compares strings by their UTF-16 code units. It differs from
// Go's byte (code point) order only when a supplementary character meets a
// character in U+E000–U+FFFF.
func lessUTF16(a, b string) bool {
	for a != "" && b != "" {
		ra, na := utf8.DecodeRuneInString(a)
		rb, nb := utf8.DecodeRuneInString(b)
		if ra != rb {
			return utf16Key(ra) < utf16Key(rb)
		}
		a, b = a[na:], b[nb:]
	}
	return a == "" && b != ""
}

// utf16Key orders a rune by its first UTF-16 code unit (then the rest).
func utf16Key(r rune) uint32 {
	if r >= 0x10000 {
		r1, r2 := utf16.EncodeRune(r)
		return uint32(r1)<<16 | uint32(r2)
	}
	return uint32(r) << 16
}

// writeCanonical serializes n as RFC 8785 does (members already sorted).
func writeCanonical(b *bytes.Buffer, n *node) {
	switch n.kind {
	case kindNull:
		b.WriteString("null")
	case kindTrue:
		b.WriteString("true")
	case kindFalse:
		b.WriteString("false")
	case kindNumber:
		b.WriteString(n.str)
	case kindString:
		writeString(b, n.str, false)
	case kindArray:
		b.WriteByte('[')
		for i, v := range n.arr {
			if i > 0 {
				b.WriteByte(',')
			}
			writeCanonical(b, v)
		}
		b.WriteByte(']')
	case kindObject:
		b.WriteByte('{')
		for i, m := range n.obj {
			if i > 0 {
				b.WriteByte(',')
			}
			writeString(b, m.key, false)
			b.WriteByte(':')
			writeCanonical(b, m.val)
		}
		b.WriteByte('}')
	}
}

// writeString writes s as a JSON string: minimally escaped (RFC 8785), or,
// with visible set, also escaping every character a reviewer could not see
// (format and other invisible characters, line and paragraph separators),
// which decodes to the same string.
func writeString(b *bytes.Buffer, s string, visible bool) {
	const hexDigits = "0123456789abcdef"
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\b':
			b.WriteString(`\b`)
		case r == '\f':
			b.WriteString(`\f`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || (visible && needsVisibleEscape(r)):
			var units []uint16
			if r >= 0x10000 {
				r1, r2 := utf16.EncodeRune(r)
				units = []uint16{uint16(r1), uint16(r2)}
			} else {
				units = []uint16{uint16(r)}
			}
			for _, u := range units {
				b.WriteString(`\u`)
				b.WriteByte(hexDigits[u>>12&0xf])
				b.WriteByte(hexDigits[u>>8&0xf])
				b.WriteByte(hexDigits[u>>4&0xf])
				b.WriteByte(hexDigits[u&0xf])
			}
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
}

// errNotObject is returned for a lockfile that is not a JSON object.
var errNotObject = errors.New("pin: a lockfile must be a JSON object")
