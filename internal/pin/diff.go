package pin

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// maxDiff caps a Verdict's Diff.
const maxDiff = 2048

// maxValue caps one rendered object or array in a diff line.
const maxValue = 512

// diff describes, one line per changed field, how the canonical definition
// a became b: `path: old → new`, with `(absent)` for an added field and
// `(removed)` for a removed one. Strings are quoted with %q, so hidden
// characters show as escapes; a long string that changed in the middle is
// shown from a little before the change ("…" marks what is left out).
func diff(a, b *node) string {
	var lines []string
	diffNode(&lines, "", a, b)
	return capLines(lines, maxDiff)
}

func diffNode(lines *[]string, path string, a, b *node) {
	switch {
	case a == nil && b == nil:
		return
	case a == nil:
		*lines = append(*lines, label(path)+": (absent) → "+render(b, maxValue))
		return
	case b == nil:
		*lines = append(*lines, label(path)+": "+render(a, maxValue)+" → (removed)")
		return
	}
	if a.kind == kindObject && b.kind == kindObject {
		for _, k := range mergeKeys(a, b, path == "") {
			diffNode(lines, joinKey(path, k), a.field(k), b.field(k))
		}
		return
	}
	if a.kind == kindArray && b.kind == kindArray && !(scalars(a) && scalars(b)) {
		for i := 0; i < max(len(a.arr), len(b.arr)); i++ {
			var x, y *node
			if i < len(a.arr) {
				x = a.arr[i]
			}
			if i < len(b.arr) {
				y = b.arr[i]
			}
			diffNode(lines, path+"["+strconv.Itoa(i)+"]", x, y)
		}
		return
	}
	if equal(a, b) {
		return
	}
	if a.kind == kindString && b.kind == kindString {
		x, y := elide(a.str, b.str)
		*lines = append(*lines, label(path)+": "+x+" → "+y)
		return
	}
	*lines = append(*lines, label(path)+": "+render(a, maxValue)+" → "+render(b, maxValue))
}

func label(path string) string {
	if path == "" {
		return "(definition)"
	}
	return path
}

// topOrder puts the fields a reviewer reads first at the top of a diff.
var topOrder = map[string]int{"name": 1, "title": 2, "description": 3}

// mergeKeys returns the union of a's and b's keys in canonical order (at
// the top level, name, title and description first).
func mergeKeys(a, b *node, top bool) []string {
	keys := make([]string, 0, len(a.obj)+len(b.obj))
	i, j := 0, 0
	for i < len(a.obj) || j < len(b.obj) {
		switch {
		case j == len(b.obj) || i < len(a.obj) && lessUTF16(a.obj[i].key, b.obj[j].key):
			keys = append(keys, a.obj[i].key)
			i++
		case i == len(a.obj) || lessUTF16(b.obj[j].key, a.obj[i].key):
			keys = append(keys, b.obj[j].key)
			j++
		default:
			keys = append(keys, a.obj[i].key)
			i++
			j++
		}
	}
	if top {
		first := make([]string, 0, len(keys))
		rest := make([]string, 0, len(keys))
		for _, k := range []string{"name", "title", "description"} {
			for _, x := range keys {
				if x == k {
					first = append(first, k)
				}
			}
		}
		for _, x := range keys {
			if topOrder[x] == 0 {
				rest = append(rest, x)
			}
		}
		keys = append(first, rest...)
	}
	return keys
}

// joinKey appends an object key to a path: .key for plain identifiers,
// ["key"] otherwise.
func joinKey(path, key string) string {
	if plainKey(key) {
		if path == "" {
			return key
		}
		return path + "." + key
	}
	return path + "[" + strconv.Quote(key) + "]"
}

func plainKey(k string) bool {
	if k == "" {
		return false
	}
	for i, c := range k {
		switch {
		case c == '_' || c == '$' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z':
		case i > 0 && (c == '-' || '0' <= c && c <= '9'):
		default:
			return false
		}
	}
	return true
}

func scalars(n *node) bool {
	for _, v := range n.arr {
		if v.kind == kindArray || v.kind == kindObject {
			return false
		}
	}
	return true
}

func equal(a, b *node) bool {
	if a.kind != b.kind || a.str != b.str || len(a.arr) != len(b.arr) || len(a.obj) != len(b.obj) {
		return false
	}
	for i := range a.arr {
		if !equal(a.arr[i], b.arr[i]) {
			return false
		}
	}
	for i := range a.obj {
		if a.obj[i].key != b.obj[i].key || !equal(a.obj[i].val, b.obj[i].val) {
			return false
		}
	}
	return true
}

// render writes n compactly with strings quoted by %q, cut at about limit
// bytes with "…".
func render(n *node, limit int) string {
	var b strings.Builder
	renderTo(&b, n, limit)
	s := b.String()
	if len(s) > limit {
		cut := limit
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

func renderTo(b *strings.Builder, n *node, limit int) {
	if b.Len() > limit {
		return
	}
	switch n.kind {
	case kindString:
		b.WriteString(strconv.Quote(n.str))
	case kindArray:
		b.WriteByte('[')
		for i, v := range n.arr {
			if i > 0 {
				b.WriteByte(',')
			}
			renderTo(b, v, limit)
		}
		b.WriteByte(']')
	case kindObject:
		b.WriteByte('{')
		for i, m := range n.obj {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.Quote(m.key))
			b.WriteByte(':')
			renderTo(b, m.val, limit)
		}
		b.WriteByte('}')
	case kindNull:
		b.WriteString("null")
	case kindTrue:
		b.WriteString("true")
	case kindFalse:
		b.WriteString("false")
	default:
		b.WriteString(n.str)
	}
}

// elide quotes two versions of a string; when they are long and share a
// long prefix or suffix, most of it is left out ("…" outside the quotes)
// so the change shows.
func elide(a, b string) (string, string) {
	const keep = 24 // context kept around the change
	if len(a)+len(b) <= 160 {
		return strconv.Quote(a), strconv.Quote(b)
	}
	p := 0
	for p < len(a) && p < len(b) && a[p] == b[p] {
		p++
	}
	s := 0
	for s < len(a)-p && s < len(b)-p && a[len(a)-1-s] == b[len(b)-1-s] {
		s++
	}
	lo := 0
	if p > keep+16 {
		lo = p - keep
		for lo > 0 && !utf8.RuneStart(a[lo]) {
			lo--
		}
	}
	hiA, hiB := len(a), len(b)
	if s > keep+16 {
		hiA, hiB = len(a)-s+keep, len(b)-s+keep
		for hiA < len(a) && !utf8.RuneStart(a[hiA]) {
			hiA++
			hiB++
		}
	}
	q := func(x string, hi int) string {
		out := strconv.Quote(x[lo:hi])
		if lo > 0 {
			out = "…" + out
		}
		if hi < len(x) {
			out += "…"
		}
		return out
	}
	return q(a, hiA), q(b, hiB)
}

// capLines joins lines with newlines, keeping whole lines within limit
// bytes and ending with "…" when some are left out.
func capLines(lines []string, limit int) string {
	s := strings.Join(lines, "\n")
	if len(s) <= limit {
		return s
	}
	var b strings.Builder
	for _, l := range lines {
		if b.Len()+len(l)+len("\n…") > limit {
			break
		}
		if b.Len() > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(l)
	}
	if b.Len() == 0 {
		cut := limit - len("…")
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		return s[:cut] + "…"
	}
	return b.String() + "\n…"
}
