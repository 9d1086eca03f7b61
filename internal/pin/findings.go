package pin

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Finding is a suspicious definition: a poisoned description, or a name
// that shadows another upstream's tool.
type Finding struct {
	Upstream string
	Kind     Kind
	Name     string
	Rule     string // stable ids: "hidden-unicode", "model-instruction", "credential-reference", "tool-reference", "shadowing"
	Detail   string // what and where, quoting the offending snippet with %q (≤ 120 chars)
}

// The rules, in the order findings for one definition are listed.
const (
	RuleHiddenUnicode       = "hidden-unicode"
	RuleModelInstruction    = "model-instruction"
	RuleCredentialReference = "credential-reference"
	RuleToolReference       = "tool-reference"
	RuleShadowing           = "shadowing"
)

var ruleOrder = map[string]int{
	RuleHiddenUnicode:       0,
	RuleModelInstruction:    1,
	RuleCredentialReference: 2,
	RuleToolReference:       3,
	RuleShadowing:           4,
}

// maxSnippet caps a quoted snippet in a Detail.
const maxSnippet = 120

// modelInstructions are phrases aimed at the model rather than describing
// the tool, matched on normalized text (lower case, hidden characters
// removed, look-alikes mapped to ASCII, white space collapsed) at word
// boundaries.
var modelInstructions = []string{
	"ignore previous", "ignore all previous", "ignore any previous", "ignore the above", "ignore all the above",
	"ignore prior", "ignore all prior", "ignore your instructions", "ignore all instructions",
	"disregard previous", "disregard all previous", "disregard any previous", "disregard the above",
	"disregard prior", "disregard all prior", "disregard your instructions",
	"forget previous instructions", "forget all previous", "forget your instructions",
	"do not tell the user", "don't tell the user", "dont tell the user", "never tell the user",
	"without telling the user", "without informing the user", "without notifying the user",
	"do not inform the user", "don't inform the user", "do not notify the user",
	"do not mention", "don't mention", "dont mention", "never mention",
	"do not reveal", "don't reveal", "never reveal",
	"the user must not know", "the user should not know", "the user must never know",
	"user must not be told", "hide this from the user",
	"<important>", "</important>", "<system>", "</system>", "<instructions>", "</instructions>",
	"system prompt", "you must first", "before using this tool",
}

// credentialReferences are mentions of credential material, matched like
// modelInstructions; a plural "s" may follow.
var credentialReferences = []string{
	"id_rsa", "id_ed25519", "id_ecdsa", "id_dsa", "~/.ssh", ".ssh/", "authorized_keys",
	"private key", "private_key", "privatekey",
	"api key", "api_key", "api-key", "apikey",
	"access token", "access_token", "refresh token", "refresh_token", "bearer token",
	"secret key", "secret_key", "client secret", "client_secret", "aws_secret",
	"password", "passwd", "/etc/shadow", "credential", ".env", ".netrc", ".npmrc", ".pypirc",
}

// text is one piece of a definition the model reads.
type text struct {
	where string // a path such as "description" or "inputSchema.properties.path.description"
	s     string
}

// parsedDef is a definition prepared for the rules.
type parsedDef struct {
	Definition
	texts []text // what the model reads, name excluded
	norm  []normalized
}

// Findings reports poisoned descriptions across all upstreams' definitions,
// one finding per definition and rule, sorted by upstream, kind, name and
// rule. It reads the name, title and description of tools, prompts and
// resource templates, tool annotations' title, prompt arguments' titles
// and descriptions, and the titles and descriptions anywhere in tools'
// input and output schemas. Definitions that are not valid JSON objects
// are skipped (Lock.Check reports them).
func Findings(defs []Definition) []Finding {
	parsed := make([]*parsedDef, 0, len(defs))
	for _, d := range defs {
		if !d.Kind.valid() {
			continue
		}
		tree, err := parseJSON(d.Raw)
		if err != nil || tree.kind != kindObject {
			continue
		}
		p := &parsedDef{Definition: d, texts: texts(d.Kind, tree)}
		p.norm = make([]normalized, len(p.texts))
		for i, t := range p.texts {
			p.norm[i] = normalize(t.s)
		}
		parsed = append(parsed, p)
	}
	tools := toolIndex(parsed)

	var out []Finding
	add := func(p *parsedDef, rule, detail string) {
		if detail != "" {
			out = append(out, Finding{Upstream: p.Upstream, Kind: p.Kind, Name: p.Name, Rule: rule, Detail: detail})
		}
	}
	for _, p := range parsed {
		add(p, RuleHiddenUnicode, hiddenUnicode(p))
		add(p, RuleModelInstruction, phrases(p, modelInstructions, false))
		add(p, RuleCredentialReference, phrases(p, credentialReferences, true))
		add(p, RuleToolReference, toolReference(p, tools))
		if p.Kind == Tool {
			add(p, RuleShadowing, shadowing(p, tools))
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := &out[i], &out[j]
		switch {
		case a.Upstream != b.Upstream:
			return a.Upstream < b.Upstream
		case a.Kind != b.Kind:
			return a.Kind < b.Kind
		case a.Name != b.Name:
			return a.Name < b.Name
		case a.Rule != b.Rule:
			return ruleOrder[a.Rule] < ruleOrder[b.Rule]
		}
		return a.Detail < b.Detail
	})
	// One finding per (definition, rule), even for a definition listed twice.
	dedup := out[:0]
	for i, f := range out {
		if i > 0 {
			prev := dedup[len(dedup)-1]
			if prev.Upstream == f.Upstream && prev.Kind == f.Kind && prev.Name == f.Name && prev.Rule == f.Rule {
				continue
			}
		}
		dedup = append(dedup, f)
	}
	return dedup
}

// texts collects what the model reads of a definition, in a fixed order.
func texts(kind Kind, def *node) []text {
	var ts []text
	str := func(where string, n *node) {
		if n != nil && n.kind == kindString && n.str != "" {
			ts = append(ts, text{where, n.str})
		}
	}
	str("title", def.field("title"))
	str("description", def.field("description"))
	switch kind {
	case Tool:
		str("annotations.title", def.field("annotations").field("title"))
		for _, k := range []string{"inputSchema", "outputSchema"} {
			if s := def.field(k); s != nil {
				schemaTexts(&ts, k, s)
			}
		}
	case Prompt:
		if args := def.field("arguments"); args != nil && args.kind == kindArray {
			for i, a := range args.arr {
				where := "arguments[" + strconv.Itoa(i) + "]"
				str(where+".title", a.field("title"))
				str(where+".description", a.field("description"))
			}
		}
	}
	return ts
}

// schemaKeywordsWithNames are JSON Schema keywords whose value maps names
// to subschemas (so a property called "description" is not a description).
var schemaKeywordsWithNames = map[string]bool{
	"properties": true, "patternProperties": true, "$defs": true, "definitions": true, "dependentSchemas": true,
}

// schemaKeywordsWithData hold instance data, not schemas.
var schemaKeywordsWithData = map[string]bool{
	"default": true, "examples": true, "const": true, "enum": true,
}

// schemaTexts collects the string titles and descriptions of a schema and
// of its subschemas, recursively.
func schemaTexts(ts *[]text, path string, n *node) {
	switch n.kind {
	case kindArray:
		for i, v := range n.arr {
			schemaTexts(ts, path+"["+strconv.Itoa(i)+"]", v)
		}
	case kindObject:
		for _, m := range n.obj {
			p := joinKey(path, m.key)
			switch {
			case (m.key == "description" || m.key == "title") && m.val.kind == kindString:
				if m.val.str != "" {
					*ts = append(*ts, text{p, m.val.str})
				}
			case schemaKeywordsWithNames[m.key] && m.val.kind == kindObject:
				for _, sub := range m.val.obj {
					schemaTexts(ts, joinKey(p, sub.key), sub.val)
				}
			case schemaKeywordsWithData[m.key]:
			default:
				schemaTexts(ts, p, m.val)
			}
		}
	}
}

// hiddenUnicode reports hidden characters in the name and in the texts.
func hiddenUnicode(p *parsedDef) string {
	all := append([]text{{"name", p.Name}}, p.texts...)
	var detail string
	var others []string
	for _, t := range all {
		type hit struct {
			r   rune
			off int
		}
		var hits []hit
		var tags strings.Builder
		for i, r := range t.s {
			if hiddenClass(r) == "" {
				continue
			}
			hits = append(hits, hit{r, i})
			if r >= 0xE0020 && r <= 0xE007E && tags.Len() < 200 {
				tags.WriteRune(r - 0xE0000)
			}
		}
		if len(hits) == 0 {
			continue
		}
		if detail != "" {
			others = append(others, t.where)
			continue
		}
		var b strings.Builder
		b.WriteString(t.where + " has ")
		const show = 3
		for i, h := range hits {
			if i == show {
				b.WriteString(", …")
				break
			}
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "U+%04X (%s) at byte %d", h.r, hiddenClass(h.r), h.off)
		}
		if len(hits) > show {
			fmt.Fprintf(&b, " (%d hidden characters)", len(hits))
		}
		if tags.Len() > 0 {
			b.WriteString("; the tag characters spell " + snippet(tags.String(), 0, tags.Len(), maxSnippet))
		}
		detail = b.String()
	}
	if len(others) > 0 {
		detail += "; also in " + strings.Join(others, ", ")
	}
	return detail
}

// phrases reports the first of the phrases found in the texts (the
// earliest in the first text that has one), quoting it in context, and
// counts the other phrases found.
func phrases(p *parsedDef, list []string, plural bool) string {
	var detail string
	more := 0
	for i, t := range p.texts {
		n := p.norm[i]
		first, firstStart, firstEnd := "", -1, -1
		for _, ph := range list {
			start, end := findBounded(n.text, ph, isWordRune, plural)
			if start < 0 {
				continue
			}
			if first != "" {
				more++
				if start > firstStart || start == firstStart && end <= firstEnd {
					continue
				}
			}
			first, firstStart, firstEnd = ph, start, end
		}
		if first == "" {
			continue
		}
		if detail != "" {
			more++
			continue
		}
		detail = fmt.Sprintf("%s: %q in %s", t.where, first, snippet(t.s, n.orig[firstStart], n.orig[firstEnd], maxSnippet))
	}
	if more > 0 {
		detail += fmt.Sprintf(" (and %d more)", more)
	}
	return detail
}

// toolName is one tool some upstream serves.
type toolName struct {
	upstream string
	name     string
	needle   string // name normalized, to find it in normalized text
	plain    bool   // name is a plain word (see plainWord)
	fold     string // foldName(name, false)
	deconf   string // foldName(name, true)
}

// tools indexes the tools of all upstreams.
type tools struct {
	byUpstream map[string]map[string]bool // exact names
	all        []toolName                 // sorted
	byNeedle   map[string][]int           // indexes in all of the names made of name characters only, by needle
	odd        []int                      // indexes in all of the other names
}

func toolIndex(defs []*parsedDef) *tools {
	t := &tools{byUpstream: make(map[string]map[string]bool)}
	for _, d := range defs {
		if d.Kind != Tool {
			continue
		}
		if t.byUpstream[d.Upstream] == nil {
			t.byUpstream[d.Upstream] = make(map[string]bool)
		}
		if !t.byUpstream[d.Upstream][d.Name] {
			t.byUpstream[d.Upstream][d.Name] = true
			t.all = append(t.all, toolName{upstream: d.Upstream, name: d.Name, needle: normalize(d.Name).text, plain: plainWord(d.Name),
				fold: foldName(d.Name, false), deconf: foldName(d.Name, true)})
		}
	}
	sort.Slice(t.all, func(i, j int) bool {
		if t.all[i].name != t.all[j].name {
			return t.all[i].name < t.all[j].name
		}
		return t.all[i].upstream < t.all[j].upstream
	})
	t.byNeedle = make(map[string][]int)
	for i, tn := range t.all {
		if tn.needle != "" && strings.IndexFunc(tn.needle, func(r rune) bool { return !isNameRune(r) }) < 0 {
			t.byNeedle[tn.needle] = append(t.byNeedle[tn.needle], i)
		} else {
			t.odd = append(t.odd, i)
		}
	}
	return t
}

// candidates returns, in order, the indexes of the tools whose names may
// occur in the texts: those equal to a whole name-like token, and those
// whose names are not made of name characters only.
func (t *tools) candidates(texts []normalized) []int {
	seen := make(map[int]bool)
	out := append([]int(nil), t.odd...)
	for _, n := range texts {
		s := n.text
		for i := 0; i < len(s); {
			r, size := utf8.DecodeRuneInString(s[i:])
			if !isNameRune(r) {
				i += size
				continue
			}
			j := i + size
			for j < len(s) {
				r, size := utf8.DecodeRuneInString(s[j:])
				if !isNameRune(r) {
					break
				}
				j += size
			}
			for _, k := range t.byNeedle[s[i:j]] {
				if !seen[k] {
					seen[k] = true
					out = append(out, k)
				}
			}
			i = j
		}
	}
	sort.Ints(out)
	return out
}

// plainWord reports whether a name is a single ordinary word ("search",
// "fetch"): such names occur in prose, so they count as references only
// when quoted or followed by "tool" or "function".
func plainWord(name string) bool {
	lower, upper := 0, 0
	for _, r := range name {
		switch {
		case unicode.IsLower(r):
			lower++
		case unicode.IsUpper(r):
			upper++
		default:
			return false
		}
	}
	// "Search" is plain; "sendEmail" is not.
	first, _ := utf8.DecodeRuneInString(name)
	return upper == 0 || upper == 1 && unicode.IsUpper(first)
}

// toolReference reports a text that names a tool (of at least 4
// characters) that another upstream serves and the definition's own
// upstream does not.
func toolReference(p *parsedDef, t *tools) string {
	var detail string
	more := 0
	for _, k := range t.candidates(p.norm) {
		tn := t.all[k]
		if tn.upstream == p.Upstream || utf8.RuneCountInString(tn.name) < 4 || t.byUpstream[p.Upstream][tn.name] {
			continue
		}
		if tn.needle == "" {
			continue
		}
		for i, tx := range p.texts {
			n := p.norm[i]
			start, end := findReference(n.text, tn.needle, tn.plain)
			if start < 0 {
				continue
			}
			if detail != "" {
				more++
				break
			}
			detail = fmt.Sprintf("%s names tool %q of upstream %q: %s", tx.where, tn.name, tn.upstream,
				snippet(tx.s, n.orig[start], n.orig[end], maxSnippet))
			break
		}
	}
	if more > 0 {
		detail += fmt.Sprintf(" (and %d more)", more)
	}
	return detail
}

// findReference finds name in text as a whole name; a plain word must be
// quoted (`x`, 'x', "x") or followed by "tool" or "function".
func findReference(text, name string, plain bool) (int, int) {
	for from := 0; from < len(text); {
		start, end := findBounded(text[from:], name, isNameRune, false)
		if start < 0 {
			return -1, -1
		}
		start, end = start+from, end+from
		from = start + 1
		if !plain {
			return start, end
		}
		if start > 0 && end < len(text) && strings.IndexByte("`'\"", text[start-1]) >= 0 && text[end] == text[start-1] {
			return start, end
		}
		rest := text[end:]
		if strings.HasPrefix(rest, " tool") || strings.HasPrefix(rest, " function") {
			return start, end
		}
	}
	return -1, -1
}

// foldName is a tool name with case, "_" and "-" ignored; with
// deconfused set, look-alike characters are mapped to ASCII first.
func foldName(name string, deconfused bool) string {
	var b strings.Builder
	for _, r := range name {
		if deconfused {
			r = deconfuse(r)
		}
		if r == '_' || r == '-' || hiddenClass(r) != "" {
			continue
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}

// shadowing reports a tool whose name another upstream also serves:
// exactly, equal after case-folding and dropping "_" and "-", or differing
// only by look-alike characters.
func shadowing(p *parsedDef, t *tools) string {
	fold, deconf := foldName(p.Name, false), foldName(p.Name, true)
	var exact, folded, confused []string // the most telling first
	for _, tn := range t.all {
		if tn.upstream == p.Upstream {
			continue
		}
		switch {
		case tn.name == p.Name:
			exact = append(exact, fmt.Sprintf("upstream %q also serves %q", tn.upstream, tn.name))
		case fold != "" && tn.fold == fold:
			folded = append(folded, fmt.Sprintf("upstream %q serves %q, the same name but for case, \"_\" and \"-\"", tn.upstream, tn.name))
		case deconf != "" && tn.deconf == deconf:
			confused = append(confused, fmt.Sprintf("upstream %q serves %q, which looks the same (%s)", tn.upstream, tn.name, lookalikes(p.Name, tn.name)))
		}
	}
	hits := append(append(exact, folded...), confused...)
	if len(hits) == 0 {
		return ""
	}
	detail := fmt.Sprintf("tool %q: %s", p.Name, hits[0])
	if len(hits) > 1 {
		detail += fmt.Sprintf(" (and %d more)", len(hits)-1)
	}
	return detail
}

// lookalikes lists the non-ASCII characters of two names.
func lookalikes(a, b string) string {
	var parts []string
	seen := map[rune]bool{}
	for _, r := range a + b {
		if r >= utf8.RuneSelf && !seen[r] {
			seen[r] = true
			parts = append(parts, fmt.Sprintf("U+%04X %q", r, r))
		}
	}
	if len(parts) == 0 {
		return "look-alike characters"
	}
	return strings.Join(parts, ", ")
}
