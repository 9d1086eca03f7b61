package pin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// lockVersion is the lockfile format this package reads and writes.
const lockVersion = 1

// lockComment heads every lockfile.
const lockComment = "mcpgate.lock pins the definitions (tools, prompts, resource templates) that mcpgate's upstreams serve, " +
	"by the SHA-256 of each one's canonical form. A definition that is new or differs from its pinned digest is quarantined " +
	"(hidden from clients and uncallable; only reported in warn mode) until it is re-pinned. Review changes to this file as you review code, and commit it. " +
	"Regenerate it with: mcpgate pin"

// Lock is a parsed lockfile. It is immutable; its methods are safe for
// concurrent use.
type Lock struct {
	entries map[entryKey]*lockEntry
}

type entryKey struct {
	upstream string
	kind     Kind
	name     string
}

type lockEntry struct {
	Entry
	tree *node // the canonical definition, parsed
}

// Entry is one pinned definition.
type Entry struct {
	Upstream   string          `json:"upstream"`
	Kind       Kind            `json:"kind"`
	Name       string          `json:"name"`
	Digest     string          `json:"digest"`
	Definition json.RawMessage `json:"definition"` // the canonical definition, kept so that a change can be shown as a diff and reviewed in git
}

// entryName names an entry in errors and reports.
func entryName(e *Entry) string {
	var parts []string
	if e.Upstream != "" {
		parts = append(parts, e.Upstream)
	}
	if e.Kind != "" {
		parts = append(parts, string(e.Kind))
	}
	if e.Name != "" {
		parts = append(parts, strconv.Quote(e.Name))
	}
	return strings.Join(parts, " ")
}

// unprefixed is err's message without the package prefix, for wrapping.
func unprefixed(err error) string {
	return strings.TrimPrefix(err.Error(), "pin: ")
}

// Status is how a definition stands against the lock.
type Status string

// The statuses Check returns.
const (
	Pinned  Status = "pinned"  // matches the lock
	New     Status = "new"     // not in the lock
	Changed Status = "changed" // in the lock with another digest
)

// Verdict is the result of checking one definition against the lock.
type Verdict struct {
	Status Status
	Digest string // the definition's digest now
	Diff   string // for Changed: a short human diff of the canonical definitions, field by field, capped at 2 KiB
	Err    error  // the definition could not be canonicalized (then it must be treated as changed/quarantined by the caller)
}

// NewLock pins every definition. Definitions listed twice identically are
// pinned once; an error names a definition that is invalid (unknown kind,
// no upstream or name, a name that differs from the definition's own, not
// canonicalizable) or listed twice with different content.
func NewLock(defs []Definition) (*Lock, error) {
	l := &Lock{entries: make(map[entryKey]*lockEntry, len(defs))}
	for i, d := range defs {
		what := fmt.Sprintf("definition %d (%s %s %q)", i, d.Upstream, d.Kind, d.Name)
		if d.Upstream == "" {
			return nil, fmt.Errorf("pin: %s: no upstream", what)
		}
		if d.Name == "" {
			return nil, fmt.Errorf("pin: %s: no name", what)
		}
		canon, tree, err := canonical(d.Kind, d.Raw)
		if err != nil {
			return nil, fmt.Errorf("pin: %s: %s", what, unprefixed(err))
		}
		if err := checkName(tree, d.Name); err != nil {
			return nil, fmt.Errorf("pin: %s: %w", what, err)
		}
		e := &lockEntry{
			Entry: Entry{Upstream: d.Upstream, Kind: d.Kind, Name: d.Name, Digest: digestOf(canon), Definition: canon},
			tree:  tree,
		}
		k := entryKey{d.Upstream, d.Kind, d.Name}
		if old, ok := l.entries[k]; ok {
			if old.Digest != e.Digest {
				return nil, fmt.Errorf("pin: %s: listed twice with different definitions", what)
			}
			continue
		}
		l.entries[k] = e
	}
	return l, nil
}

// checkName verifies that a definition's own name, if it has one, is name.
func checkName(tree *node, name string) error {
	n := tree.field("name")
	if n == nil {
		return nil
	}
	if n.kind != kindString {
		return fmt.Errorf("its name is %s, not a string", n.kindName())
	}
	if n.str != name {
		return fmt.Errorf("its definition is named %q", n.str)
	}
	return nil
}

// Parse parses a lockfile strictly: invalid JSON, duplicate keys, unknown
// fields, a version other than 1, and entries with a missing or bad field,
// an unknown kind, a definition holding fields that are not pinned, a
// digest that does not match the definition, or listed twice are errors
// naming the entry.
func Parse(data []byte) (*Lock, error) {
	root, err := parseJSON(data)
	if err != nil {
		return nil, fmt.Errorf("pin: lockfile: %s", unprefixed(err))
	}
	if root.kind != kindObject {
		return nil, errNotObject
	}
	var version, entries *node
	for _, m := range root.obj {
		switch m.key {
		case "version":
			version = m.val
		case "comment":
			if m.val.kind != kindString {
				return nil, fmt.Errorf("pin: lockfile: comment is %s, not a string", m.val.kindName())
			}
		case "entries":
			entries = m.val
		default:
			return nil, fmt.Errorf("pin: lockfile: unknown field %q", m.key)
		}
	}
	switch {
	case version == nil:
		return nil, errors.New("pin: lockfile: no version")
	case version.kind != kindNumber:
		return nil, fmt.Errorf("pin: lockfile: version is %s, not a number", version.kindName())
	case version.str != fmt.Sprint(lockVersion):
		return nil, fmt.Errorf("pin: lockfile: unsupported version %s (this mcpgate reads version %d)", version.str, lockVersion)
	case entries == nil:
		return nil, errors.New("pin: lockfile: no entries")
	case entries.kind != kindArray:
		return nil, fmt.Errorf("pin: lockfile: entries is %s, not an array", entries.kindName())
	}
	l := &Lock{entries: make(map[entryKey]*lockEntry, len(entries.arr))}
	for i, n := range entries.arr {
		e, err := parseEntry(n)
		if err != nil {
			what := fmt.Sprintf("entry %d", i)
			if e != nil {
				what += " (" + entryName(&e.Entry) + ")"
			}
			return nil, fmt.Errorf("pin: lockfile: %s: %w", what, err)
		}
		k := entryKey{e.Upstream, e.Kind, e.Name}
		if _, dup := l.entries[k]; dup {
			return nil, fmt.Errorf("pin: lockfile: entry %d (%s): duplicate entry", i, entryName(&e.Entry))
		}
		l.entries[k] = e
	}
	return l, nil
}

// parseEntry validates one entry. On error it returns what it could read
// of the entry, to name it, or nil.
func parseEntry(n *node) (*lockEntry, error) {
	if n.kind != kindObject {
		return nil, fmt.Errorf("is %s, not an object", n.kindName())
	}
	str := func(key string) (string, error) {
		v := n.field(key)
		if v == nil {
			return "", fmt.Errorf("no %s", key)
		}
		if v.kind != kindString {
			return "", fmt.Errorf("%s is %s, not a string", key, v.kindName())
		}
		if v.str == "" {
			return "", fmt.Errorf("empty %s", key)
		}
		return v.str, nil
	}
	e := &lockEntry{}
	e.Upstream, _ = str("upstream")
	kind, _ := str("kind")
	e.Kind = Kind(kind)
	e.Name, _ = str("name")
	named := e
	if e.Upstream == "" && e.Kind == "" && e.Name == "" {
		named = nil
	}
	for _, m := range n.obj {
		switch m.key {
		case "upstream", "kind", "name", "digest", "definition":
		default:
			return named, fmt.Errorf("unknown field %q", m.key)
		}
	}
	for _, key := range []string{"upstream", "kind", "name", "digest"} {
		if _, err := str(key); err != nil {
			return named, err
		}
	}
	if !e.Kind.valid() {
		return named, fmt.Errorf("unknown kind %q (want %q, %q or %q)", kind, Tool, Prompt, ResourceTemplate)
	}
	e.Digest, _ = str("digest")
	if !validDigest(e.Digest) {
		return named, fmt.Errorf("malformed digest %q (want sha256: and 64 lower-case hex digits)", e.Digest)
	}
	def := n.field("definition")
	if def == nil {
		return named, errors.New("no definition")
	}
	if def.kind != kindObject {
		return named, fmt.Errorf("definition is %s, not an object", def.kindName())
	}
	tree := pick(e.Kind, def)
	if len(tree.obj) != len(def.obj) {
		for _, m := range def.obj {
			if tree.field(m.key) == nil {
				return named, fmt.Errorf("definition has field %q, which a %s does not pin", m.key, e.Kind)
			}
		}
	}
	if err := checkName(tree, e.Name); err != nil {
		return named, err
	}
	var buf bytes.Buffer
	writeCanonical(&buf, tree)
	if got := digestOf(buf.Bytes()); got != e.Digest {
		return named, fmt.Errorf("digest %s does not match the definition (whose digest is %s)", e.Digest, got)
	}
	e.Definition = buf.Bytes()
	e.tree = tree
	return e, nil
}

func validDigest(s string) bool {
	h, ok := strings.CutPrefix(s, "sha256:")
	if !ok || len(h) != 64 {
		return false
	}
	for _, c := range h {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// sorted returns the lock's entries sorted by upstream, kind and name.
func (l *Lock) sorted() []*lockEntry {
	if l == nil {
		return nil
	}
	es := make([]*lockEntry, 0, len(l.entries))
	for _, e := range l.entries {
		es = append(es, e)
	}
	sort.Slice(es, func(i, j int) bool { return lessEntry(&es[i].Entry, &es[j].Entry) })
	return es
}

func lessEntry(a, b *Entry) bool {
	if a.Upstream != b.Upstream {
		return a.Upstream < b.Upstream
	}
	if a.Kind != b.Kind {
		return a.Kind < b.Kind
	}
	return a.Name < b.Name
}

// Marshal returns the lockfile: deterministic, entries sorted by upstream,
// kind and name, pretty JSON (2-space indent) so that git diffs are
// reviewable. Characters a reviewer could not see (format characters such
// as zero-width or bidi controls, tag characters, line separators) are
// written as \u escapes; the escapes decode to the same strings, so the
// digests are unchanged.
func (l *Lock) Marshal() []byte {
	var b bytes.Buffer
	b.WriteString("{\n  \"version\": ")
	fmt.Fprint(&b, lockVersion)
	b.WriteString(",\n  \"comment\": ")
	writeString(&b, lockComment, true)
	b.WriteString(",\n  \"entries\": [")
	es := l.sorted()
	for i, e := range es {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("\n    {\n      \"upstream\": ")
		writeString(&b, e.Upstream, true)
		b.WriteString(",\n      \"kind\": ")
		writeString(&b, string(e.Kind), true)
		b.WriteString(",\n      \"name\": ")
		writeString(&b, e.Name, true)
		b.WriteString(",\n      \"digest\": ")
		writeString(&b, e.Digest, true)
		b.WriteString(",\n      \"definition\": ")
		writePretty(&b, e.tree, "      ")
		b.WriteString("\n    }")
	}
	if len(es) > 0 {
		b.WriteString("\n  ")
	}
	b.WriteString("]\n}\n")
	return b.Bytes()
}

// writePretty writes n indented by two spaces a level, keys in canonical
// order, invisible characters escaped.
func writePretty(b *bytes.Buffer, n *node, indent string) {
	switch n.kind {
	case kindArray:
		if len(n.arr) == 0 {
			b.WriteString("[]")
			return
		}
		b.WriteByte('[')
		for i, v := range n.arr {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString("\n" + indent + "  ")
			writePretty(b, v, indent+"  ")
		}
		b.WriteString("\n" + indent + "]")
	case kindObject:
		if len(n.obj) == 0 {
			b.WriteString("{}")
			return
		}
		b.WriteByte('{')
		for i, m := range n.obj {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString("\n" + indent + "  ")
			writeString(b, m.key, true)
			b.WriteString(": ")
			writePretty(b, m.val, indent+"  ")
		}
		b.WriteString("\n" + indent + "}")
	case kindString:
		writeString(b, n.str, true)
	default:
		writeCanonical(b, n)
	}
}

// Entries returns a copy of the lock's entries, sorted by upstream, kind
// and name.
func (l *Lock) Entries() []Entry {
	es := l.sorted()
	out := make([]Entry, len(es))
	for i, e := range es {
		out[i] = e.Entry
		out[i].Definition = bytes.Clone(e.Definition)
	}
	return out
}

// Check tells how d stands against the lock: Pinned, New or Changed (with
// a diff). A definition that cannot be canonicalized gets Err set, and
// Status New or Changed as its name is in the lock or not; the caller must
// quarantine it. A nil Lock holds nothing.
func (l *Lock) Check(d Definition) Verdict {
	var pinned *lockEntry
	if l != nil {
		pinned = l.entries[entryKey{d.Upstream, d.Kind, d.Name}]
	}
	canon, tree, err := canonical(d.Kind, d.Raw)
	if err != nil {
		v := Verdict{Status: New, Err: err}
		if pinned != nil {
			v.Status = Changed
		}
		return v
	}
	v := Verdict{Digest: digestOf(canon)}
	switch {
	case pinned == nil:
		v.Status = New
	case pinned.Digest == v.Digest:
		v.Status = Pinned
	default:
		v.Status = Changed
		v.Diff = diff(pinned.tree, tree)
	}
	return v
}

// Missing lists the lock's entries for upstream that are not among defs
// (pinned definitions the upstream no longer serves), sorted — for reports.
func (l *Lock) Missing(upstream string, defs []Definition) []Entry {
	served := make(map[entryKey]bool, len(defs))
	for _, d := range defs {
		served[entryKey{d.Upstream, d.Kind, d.Name}] = true
	}
	var out []Entry
	for _, e := range l.sorted() {
		if e.Upstream == upstream && !served[entryKey{e.Upstream, e.Kind, e.Name}] {
			c := e.Entry
			c.Definition = bytes.Clone(e.Definition)
			out = append(out, c)
		}
	}
	return out
}
