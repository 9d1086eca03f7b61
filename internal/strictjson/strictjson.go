// Package strictjson is the single gate that untrusted JSON bytes pass before
// they reach the MCP SDK.
//
// Go's encoding/json, and decoders modelled on it, are lenient in ways an
// attacker can use to make the gateway and the SDK disagree about what a
// message says: they keep the last of duplicate keys, match struct fields
// case-insensitively (including Unicode folds such as U+017F and U+212A,
// CVE-2026-27896), and turn invalid UTF-8 and lone surrogates into U+FFFD,
// all without error. Check rejects each of those ambiguities, so any value it
// accepts has exactly one reading. ParseMessage adds the JSON-RPC 2.0 shape
// rules MCP relies on and returns the fields the gateway routes on, so the
// body is not parsed twice.
//
// The validator is a single pass over the bytes: decoding into map[string]any
// first would silently lose the duplicates it exists to catch.
package strictjson

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// JSON-RPC 2.0 error codes carried in Error.Code.
const (
	CodeParseError     = -32700 // the body is not strict JSON
	CodeInvalidRequest = -32600 // strict JSON, but not an acceptable JSON-RPC message
)

// Defaults used by DefaultLimits and for any Limits field that is <= 0.
const (
	DefaultMaxBytes         = 4 << 20
	DefaultMaxDepth         = 64
	DefaultMaxStringBytes   = 1 << 20
	DefaultMaxObjectMembers = 4096
	DefaultMaxArrayLen      = 1 << 16
)

// Limits bounds the resources one value may claim. A field <= 0 means "use the
// default": a security gate should not be switched off by a zero value.
type Limits struct {
	MaxBytes         int // total input length
	MaxDepth         int // nested objects+arrays; the top-level container is depth 1
	MaxStringBytes   int // decoded length of any string, keys included
	MaxObjectMembers int // members of any one object
	MaxArrayLen      int // elements of any one array
}

// DefaultLimits returns limits that are ample for MCP traffic.
func DefaultLimits() Limits {
	return Limits{
		MaxBytes:         DefaultMaxBytes,
		MaxDepth:         DefaultMaxDepth,
		MaxStringBytes:   DefaultMaxStringBytes,
		MaxObjectMembers: DefaultMaxObjectMembers,
		MaxArrayLen:      DefaultMaxArrayLen,
	}
}

func (l Limits) withDefaults() Limits {
	def := func(v, d int) int {
		if v <= 0 {
			return d
		}
		return v
	}
	return Limits{
		MaxBytes:         def(l.MaxBytes, DefaultMaxBytes),
		MaxDepth:         def(l.MaxDepth, DefaultMaxDepth),
		MaxStringBytes:   def(l.MaxStringBytes, DefaultMaxStringBytes),
		MaxObjectMembers: def(l.MaxObjectMembers, DefaultMaxObjectMembers),
		MaxArrayLen:      def(l.MaxArrayLen, DefaultMaxArrayLen),
	}
}

// Error is returned for every rejection. Code is CodeParseError for anything
// that is not strict JSON within the limits and CodeInvalidRequest for
// JSON-RPC shape problems, batches included. Reason is safe to send to the
// client: it names the problem and the key path, and echoes at most a short,
// quoted key.
type Error struct {
	Code   int    // JSON-RPC error code to answer with
	Offset int    // byte offset of the problem, -1 if not tied to one
	Reason string // short, specific, client-safe
}

func (e *Error) Error() string {
	if e.Offset < 0 {
		return "strictjson: " + e.Reason
	}
	return "strictjson: " + e.Reason + " (offset " + strconv.Itoa(e.Offset) + ")"
}

// Check validates that data is exactly one strict JSON value within lim.
func Check(data []byte, lim Limits) error {
	var s scanner
	s.init(data, lim)
	defer s.release()
	if err := s.run(); err != nil {
		return err
	}
	return nil
}

// linearKeys is the object size up to which duplicate detection scans the
// folded keys seen so far instead of using a map: cheaper, and allocation-free,
// for the small objects that make up nearly all MCP traffic.
const linearKeys = 16

// frame is one open container on the path from the root to the cursor. The
// path is only rendered when an error needs it.
type frame struct {
	array  bool
	index  int   // current element, for arrays
	keyOff int   // offset of the current key's opening quote, for objects
	key    keyID // what the current key means to ParseMessage
}

// keyEntry records one key of an open object: where it is (to name it in an
// error) and its case-folded form in scanner.fold.
type keyEntry struct {
	off       int
	foldStart int
	foldEnd   int
}

type scanner struct {
	data []byte
	pos  int
	lim  Limits

	frames []frame
	keys   []keyEntry       // keys of all open objects, innermost last
	fold   []byte           // case-folded keys, parallel to keys
	buf    []byte           // decoded string scratch; valid until the next string
	maps   []map[string]int // per-depth sets for large objects, reused

	route bool    // ParseMessage wants the routing fields in msg
	msg   capture // kept inline (not a pointer) so the scanner stays on the stack

	scratch *scratch // from scratchPool, until release
}

// release returns the scanner's scratch to the pool; s is done.
func (s *scanner) release() {
	scratchPool.Put(s.scratch)
	*s = scanner{}
}

// scratch holds the initial backing stores of the scanner's slices, so a
// typical message needs no allocation of its own. It holds no pointers,
// and nothing a scan returns points into it (strings are copied out), so
// it goes back to scratchPool when the scan ends: every request and every
// relayed upstream event is scanned, and a fresh 1.8 KiB per scan was
// 3.5% of the gateway's CPU with an HTTP upstream.
type scratch struct {
	frames [16]frame
	keys   [32]keyEntry
	fold   [256]byte
	buf    [64]byte
	strs   [128]byte
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

// init readies s to scan data; release must follow when the scan's
// results have been copied out.
func (s *scanner) init(data []byte, lim Limits) {
	sc := scratchPool.Get().(*scratch)
	s.scratch = sc
	s.data = data
	s.lim = lim.withDefaults()
	s.frames = sc.frames[:0]
	s.keys = sc.keys[:0]
	s.fold = sc.fold[:0]
	s.buf = sc.buf[:0]
	s.msg.strs = sc.strs[:0]
}

func (s *scanner) run() *Error {
	d := s.data
	if len(d) > s.lim.MaxBytes {
		return s.errf(CodeParseError, -1, "body larger than %d bytes", s.lim.MaxBytes)
	}
	if bytes.HasPrefix(d, []byte("\xef\xbb\xbf")) {
		return s.errf(CodeParseError, 0, "byte order mark not allowed")
	}
	s.skipWS()
	if s.pos == len(d) {
		return s.errf(CodeParseError, s.pos, "empty input")
	}
	if err := s.value(); err != nil {
		return err
	}
	s.skipWS()
	if s.pos != len(d) {
		return s.errf(CodeParseError, s.pos, "trailing data after top-level value")
	}
	return nil
}

func (s *scanner) errf(code, off int, format string, args ...any) *Error {
	return &Error{Code: code, Offset: off, Reason: fmt.Sprintf(format, args...)}
}

func (s *scanner) skipWS() {
	d, i := s.data, s.pos
	for i < len(d) {
		switch d[i] {
		case ' ', '\t', '\n', '\r':
			i++
			continue
		}
		break
	}
	s.pos = i
}

// unexpected reports the byte at the cursor (or end of input) while looking
// for what.
func (s *scanner) unexpected(what string) *Error {
	if s.pos >= len(s.data) {
		return s.errf(CodeParseError, s.pos, "unexpected end of input %s", what)
	}
	c := s.data[s.pos]
	switch {
	case c >= utf8.RuneSelf:
		r, n := utf8.DecodeRune(s.data[s.pos:])
		if r == utf8.RuneError && n == 1 {
			return s.errf(CodeParseError, s.pos, "invalid UTF-8 %s", what)
		}
		return s.errf(CodeParseError, s.pos, "unexpected character %U %s", r, what)
	case c < 0x20 || c == 0x7f:
		return s.errf(CodeParseError, s.pos, "unexpected byte 0x%02x %s", c, what)
	default:
		return s.errf(CodeParseError, s.pos, "unexpected character %q %s", rune(c), what)
	}
}

func (s *scanner) value() *Error {
	s.skipWS()
	if s.pos >= len(s.data) {
		return s.unexpected("looking for value")
	}
	switch c := s.data[s.pos]; c {
	case '{':
		return s.object()
	case '[':
		return s.array()
	case '"':
		_, err := s.str(false)
		return err
	case 't':
		return s.literal("true")
	case 'f':
		return s.literal("false")
	case 'n':
		return s.literal("null")
	default:
		if c == '-' || ('0' <= c && c <= '9') {
			_, err := s.number()
			return err
		}
		return s.unexpected("looking for value")
	}
}

func (s *scanner) literal(lit string) *Error {
	if !bytes.HasPrefix(s.data[s.pos:], []byte(lit)) {
		return s.errf(CodeParseError, s.pos, "invalid literal, expected %s", lit)
	}
	s.pos += len(lit)
	return nil
}

func (s *scanner) push(array bool) *Error {
	if len(s.frames) >= s.lim.MaxDepth {
		return s.errf(CodeParseError, s.pos, "nesting deeper than %d at %s", s.lim.MaxDepth, s.path(len(s.frames)))
	}
	s.frames = append(s.frames, frame{array: array})
	return nil
}

func (s *scanner) array() *Error {
	if err := s.push(true); err != nil {
		return err
	}
	s.pos++ // '['
	s.skipWS()
	if s.pos < len(s.data) && s.data[s.pos] == ']' {
		s.pos++
		s.frames = s.frames[:len(s.frames)-1]
		return nil
	}
	fi := len(s.frames) - 1
	for n := 0; ; n++ {
		if n >= s.lim.MaxArrayLen {
			return s.errf(CodeParseError, s.pos, "array longer than %d elements at %s", s.lim.MaxArrayLen, s.path(fi))
		}
		s.frames[fi].index = n
		if err := s.value(); err != nil {
			return err
		}
		s.skipWS()
		if s.pos < len(s.data) {
			switch s.data[s.pos] {
			case ',':
				s.pos++
				continue
			case ']':
				s.pos++
				s.frames = s.frames[:fi]
				return nil
			}
		}
		return s.unexpected("after array element")
	}
}

func (s *scanner) object() *Error {
	if err := s.push(false); err != nil {
		return err
	}
	s.pos++ // '{'
	s.skipWS()
	fi := len(s.frames) - 1
	if s.pos < len(s.data) && s.data[s.pos] == '}' {
		s.pos++
		s.frames = s.frames[:fi]
		return nil
	}
	keyBase, foldBase := len(s.keys), len(s.fold)
	var set map[string]int // folded key -> index in s.keys; only for large objects
	for n := 0; ; n++ {
		s.skipWS()
		if s.pos >= len(s.data) || s.data[s.pos] != '"' {
			return s.unexpected("looking for object key")
		}
		if n >= s.lim.MaxObjectMembers {
			return s.errf(CodeParseError, s.pos, "object has more than %d members at %s", s.lim.MaxObjectMembers, s.path(fi))
		}
		keyOff := s.pos
		key, err := s.str(true)
		if err != nil {
			return err
		}
		if bytes.IndexByte(key, 0) >= 0 {
			return s.errf(CodeParseError, keyOff, "key contains NUL at %s", s.path(fi))
		}
		s.frames[fi].keyOff = keyOff
		s.frames[fi].key = kNone
		if s.route {
			s.frames[fi].key = s.classify(key, keyOff)
		}

		fs := len(s.fold)
		s.fold = appendFold(s.fold, key)
		folded := s.fold[fs:]
		if set == nil {
			for i := keyBase; i < len(s.keys); i++ {
				e := s.keys[i]
				if bytes.Equal(s.fold[e.foldStart:e.foldEnd], folded) {
					return s.keyClash(e.off, keyOff, fi)
				}
			}
			if len(s.keys)-keyBase == linearKeys {
				set = s.mapAt(fi)
				for i := keyBase; i < len(s.keys); i++ {
					e := s.keys[i]
					set[string(s.fold[e.foldStart:e.foldEnd])] = i
				}
			}
		}
		if set != nil {
			if i, dup := set[string(folded)]; dup {
				return s.keyClash(s.keys[i].off, keyOff, fi)
			}
			set[string(folded)] = len(s.keys)
		}
		s.keys = append(s.keys, keyEntry{off: keyOff, foldStart: fs, foldEnd: len(s.fold)})

		s.skipWS()
		if s.pos >= len(s.data) || s.data[s.pos] != ':' {
			return s.unexpected("after object key")
		}
		s.pos++
		if id := s.frames[fi].key; id != kNone {
			err = s.captureValue(id)
		} else {
			err = s.value()
		}
		if err != nil {
			return err
		}
		s.skipWS()
		if s.pos < len(s.data) {
			switch s.data[s.pos] {
			case ',':
				s.pos++
				continue
			case '}':
				s.pos++
				s.frames = s.frames[:fi]
				s.keys = s.keys[:keyBase]
				s.fold = s.fold[:foldBase]
				if set != nil {
					clear(set)
				}
				return nil
			}
		}
		return s.unexpected("after object member")
	}
}

// mapAt returns an empty set for a large object at depth index fi, reusing
// one left by an earlier sibling at the same depth.
func (s *scanner) mapAt(fi int) map[string]int {
	for len(s.maps) <= fi {
		s.maps = append(s.maps, nil)
	}
	if s.maps[fi] == nil {
		s.maps[fi] = make(map[string]int, 2*linearKeys)
	}
	return s.maps[fi]
}

// keyClash reports a key (at off) whose folded form equals that of an
// earlier key (at prevOff) in the object at depth index fi.
func (s *scanner) keyClash(prevOff, off, fi int) *Error {
	prev, cur := s.keyAt(prevOff), s.keyAt(off)
	if prev == cur {
		return s.errf(CodeParseError, off, "duplicate key %s at %s", quoteKey(cur), s.path(fi))
	}
	return s.errf(CodeParseError, off, "case-variant key %s beside %s at %s", quoteKey(cur), quoteKey(prev), s.path(fi))
}

// keyAt decodes the (already validated) string starting at off. Error path
// only, so it may allocate.
func (s *scanner) keyAt(off int) string {
	t := scanner{data: s.data, pos: off, lim: s.lim}
	b, _ := t.str(true)
	return string(b)
}

// path renders the location of the container at depth index n (that is, the
// selectors of frames[:n]) as $.a.b[3]["odd key"].
func (s *scanner) path(n int) string {
	var b strings.Builder
	b.WriteByte('$')
	for _, f := range s.frames[:n] {
		if f.array {
			b.WriteByte('[')
			b.WriteString(strconv.Itoa(f.index))
			b.WriteByte(']')
			continue
		}
		k := s.keyAt(f.keyOff)
		if isIdent(k) && len(k) <= maxQuotedKey {
			b.WriteByte('.')
			b.WriteString(k)
		} else {
			b.WriteByte('[')
			b.WriteString(quoteKey(k))
			b.WriteByte(']')
		}
	}
	return b.String()
}

func isIdent(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c == '_' || c == '$' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || i > 0 && '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// maxQuotedKey caps how much of a client-chosen key is echoed in a Reason.
const maxQuotedKey = 64

func quoteKey(k string) string {
	if len(k) > maxQuotedKey {
		cut := maxQuotedKey
		for cut > 0 && !utf8.RuneStart(k[cut]) {
			cut--
		}
		return strconv.Quote(k[:cut]) + "..."
	}
	return strconv.Quote(k)
}

// str scans the string at the cursor. With decode it returns the decoded
// bytes, which alias the input when there are no escapes and s.buf otherwise;
// without decode the result is nil.
func (s *scanner) str(decode bool) ([]byte, *Error) {
	d := s.data
	open := s.pos
	start := open + 1
	i, seg := start, start // seg: start of input not yet copied to s.buf
	shrink := 0            // raw bytes minus decoded bytes, from escapes
	escaped := false
	for {
		// Skip plain ASCII eight bytes at a time; the byte loop below finds
		// exactly which byte stopped us.
		for i+8 <= len(d) && !specialInWord(binary.LittleEndian.Uint64(d[i:])) {
			i += 8
		}
		for i < len(d) {
			c := d[i]
			if c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
				break
			}
			i++
		}
		if i >= len(d) {
			return nil, s.errf(CodeParseError, open, "unterminated string")
		}
		switch c := d[i]; {
		case c == '"':
			if decoded := i - start - shrink; decoded > s.lim.MaxStringBytes {
				return nil, s.errf(CodeParseError, open, "string longer than %d bytes", s.lim.MaxStringBytes)
			}
			s.pos = i + 1
			if !decode {
				return nil, nil
			}
			if !escaped {
				return d[start:i], nil
			}
			s.buf = append(s.buf, d[seg:i]...)
			return s.buf, nil
		case c >= utf8.RuneSelf:
			r, n := utf8.DecodeRune(d[i:])
			if r == utf8.RuneError && n == 1 {
				return nil, s.errf(CodeParseError, i, "invalid UTF-8 in string")
			}
			i += n
		case c < 0x20:
			return nil, s.errf(CodeParseError, i, "unescaped control character 0x%02x in string", c)
		default: // '\\'
			if decode {
				if !escaped {
					s.buf = s.buf[:0]
				}
				s.buf = append(s.buf, d[seg:i]...)
			}
			escaped = true
			r, n, err := s.escape(i)
			if err != nil {
				return nil, err
			}
			if decode {
				s.buf = utf8.AppendRune(s.buf, r)
			}
			shrink += n - utf8.RuneLen(r)
			i += n
			seg = i
		}
	}
}

// specialInWord reports whether any byte of x needs attention inside a
// string: a control character, '"', '\\', or a non-ASCII byte. These are the
// exact "has byte less than / equal to" bit tricks, so there are no false
// negatives.
func specialInWord(x uint64) bool {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	hasZero := func(v uint64) uint64 { return (v - lo) & ^v & hi }
	less20 := (x - 0x20*lo) & ^x & hi
	return (less20 | hasZero(x^('"'*lo)) | hasZero(x^('\\'*lo)) | x&hi) != 0
}

// escape decodes the escape sequence at d[i] == '\\', returning the rune and
// the number of input bytes it spans.
func (s *scanner) escape(i int) (rune, int, *Error) {
	d := s.data
	if i+1 >= len(d) {
		return 0, 0, s.errf(CodeParseError, s.pos, "unterminated string")
	}
	switch d[i+1] {
	case '"', '\\', '/':
		return rune(d[i+1]), 2, nil
	case 'b':
		return '\b', 2, nil
	case 'f':
		return '\f', 2, nil
	case 'n':
		return '\n', 2, nil
	case 'r':
		return '\r', 2, nil
	case 't':
		return '\t', 2, nil
	case 'u':
		r, ok := hex4(d, i+2)
		if !ok {
			return 0, 0, s.errf(CodeParseError, i, "invalid \\u escape in string")
		}
		if !utf16.IsSurrogate(r) {
			return r, 6, nil
		}
		// encoding/json turns a lone surrogate into U+FFFD, so two different
		// inputs would decode alike: only a proper high+low pair is allowed.
		if r < 0xdc00 && i+7 < len(d) && d[i+6] == '\\' && d[i+7] == 'u' {
			lo, ok := hex4(d, i+8)
			if !ok {
				return 0, 0, s.errf(CodeParseError, i+6, "invalid \\u escape in string")
			}
			if 0xdc00 <= lo && lo <= 0xdfff {
				return utf16.DecodeRune(r, lo), 12, nil
			}
		}
		return 0, 0, s.errf(CodeParseError, i, "lone surrogate escape \\u%04x in string", r)
	default:
		return 0, 0, s.errf(CodeParseError, i, "invalid escape in string")
	}
}

func hex4(d []byte, i int) (rune, bool) {
	if i+4 > len(d) {
		return 0, false
	}
	var r rune
	for _, c := range d[i : i+4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// number scans a JSON number and reports whether it is an integer (no
// fraction or exponent).
func (s *scanner) number() (isInt bool, _ *Error) {
	d := s.data
	start, i := s.pos, s.pos
	digits := func() int {
		j := i
		for i < len(d) && '0' <= d[i] && d[i] <= '9' {
			i++
		}
		return i - j
	}
	if d[i] == '-' {
		i++
	}
	intDigits := 0
	if i < len(d) && d[i] == '0' {
		i++
		intDigits = 1
	} else if intDigits = digits(); intDigits == 0 {
		return false, s.errf(CodeParseError, start, "invalid number")
	}
	isInt = true
	if i < len(d) && d[i] == '.' {
		i++
		if digits() == 0 {
			return false, s.errf(CodeParseError, start, "invalid number")
		}
		isInt = false
	}
	hasExp := false
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false, s.errf(CodeParseError, start, "invalid number")
		}
		isInt, hasExp = false, true
	}
	// encoding/json fails to decode a number beyond float64 range into any;
	// only an exponent or a very long integer part can get there.
	if hasExp || intDigits > 300 {
		if _, err := strconv.ParseFloat(string(d[start:i]), 64); err != nil {
			return false, s.errf(CodeParseError, start, "number out of range")
		}
	}
	s.pos = i
	return isInt, nil
}

// appendFold appends the canonical simple case fold of the valid UTF-8 key:
// each rune is replaced by the smallest rune of its unicode.SimpleFold orbit,
// so two keys have equal folds exactly when strings.EqualFold reports them
// equal. That turns the case-variant check into one map/slice lookup per key.
func appendFold(dst, key []byte) []byte {
	for i := 0; i < len(key); {
		c := key[i]
		if c < utf8.RuneSelf {
			// The smallest member of an ASCII letter's orbit is its upper case.
			if 'a' <= c && c <= 'z' {
				c -= 'a' - 'A'
			}
			dst = append(dst, c)
			i++
			continue
		}
		r, n := utf8.DecodeRune(key[i:])
		i += n
		dst = utf8.AppendRune(dst, foldRune(r))
	}
	return dst
}

func foldRune(r rune) rune {
	m := r
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		m = min(m, f)
	}
	return m
}
