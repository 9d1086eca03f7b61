package policy

import (
	"regexp"
	"strings"

	"github.com/mcpgate/mcpgate/internal/config"
)

// A glob is a compiled target pattern: `*` matches any run of characters
// except '/', `**` any run including '/', `?` one character other than '/';
// everything else matches itself, and the whole name must match.
//
// Common shapes (a literal, a literal then one trailing * or **) are matched
// without a regexp; the rest go through a regexp, which Go guarantees runs in
// time linear in the name, with the pattern's literal prefix checked first.
type glob struct {
	pattern string
	kind    globKind
	lit     string         // the whole literal (globExact) or the literal prefix
	re      *regexp.Regexp // globRegexp only
}

type globKind uint8

const (
	globExact      globKind = iota // lit
	globAll                        // ** alone
	globPrefixStar                 // lit then *
	globPrefixAll                  // lit then **
	globRegexp
)

// compileGlob compiles a pattern, which must pass config.CheckGlob.
func compileGlob(pattern string) (glob, error) {
	if err := config.CheckGlob(pattern); err != nil {
		return glob{}, err
	}
	g := glob{pattern: pattern}
	meta := strings.IndexAny(pattern, "*?")
	switch rest := pattern[max(meta, 0):]; {
	case meta < 0:
		g.kind, g.lit = globExact, pattern
	case rest == "**" && meta == 0:
		g.kind = globAll
	case rest == "**":
		g.kind, g.lit = globPrefixAll, pattern[:meta]
	case rest == "*":
		g.kind, g.lit = globPrefixStar, pattern[:meta]
	default:
		g.kind, g.lit = globRegexp, pattern[:meta]
		g.re = regexp.MustCompile(globRegexpSource(pattern))
	}
	return g, nil
}

// globRegexpSource translates a glob into an anchored regexp.
func globRegexpSource(pattern string) string {
	var b strings.Builder
	b.WriteString(`^`)
	for i := 0; i < len(pattern); {
		switch {
		case strings.HasPrefix(pattern[i:], "**"):
			b.WriteString(`(?s:.*)`)
			i += 2
		case pattern[i] == '*':
			b.WriteString(`[^/]*`)
			i++
		case pattern[i] == '?':
			b.WriteString(`[^/]`)
			i++
		default:
			j := i + strings.IndexAny(pattern[i:], "*?")
			if j < i {
				j = len(pattern)
			}
			b.WriteString(regexp.QuoteMeta(pattern[i:j]))
			i = j
		}
	}
	b.WriteString(`$`)
	return b.String()
}

func (g *glob) match(name string) bool {
	switch g.kind {
	case globExact:
		return name == g.lit
	case globAll:
		return true
	case globPrefixAll:
		return strings.HasPrefix(name, g.lit)
	case globPrefixStar:
		return strings.HasPrefix(name, g.lit) && !strings.Contains(name[len(g.lit):], "/")
	default:
		return strings.HasPrefix(name, g.lit) && g.re.MatchString(name)
	}
}

// globs is a rule's patterns for one kind of target.
type globs []glob

func (gs globs) match(name string) bool {
	for i := range gs {
		if gs[i].match(name) {
			return true
		}
	}
	return false
}

func (gs globs) String() string {
	ps := make([]string, len(gs))
	for i, g := range gs {
		ps[i] = g.pattern
	}
	return strings.Join(ps, ", ")
}
