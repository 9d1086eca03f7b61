package pin

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// hiddenClass names the kind of hidden character r is, or "" if r is not
// hidden: tag characters, bidi controls, zero-width characters, other
// format (Cf) characters, the variation selectors used to smuggle bytes
// and the invisible filler letters.
func hiddenClass(r rune) string {
	switch {
	case r >= 0xE0000 && r <= 0xE007F:
		return "tag character"
	case r >= 0x202A && r <= 0x202E, r >= 0x2066 && r <= 0x2069, r == 0x200E, r == 0x200F, r == 0x061C:
		return "bidi control"
	case r >= 0x200B && r <= 0x200D, r == 0x2060:
		return "zero-width"
	case r == 0xFEFF:
		return "zero-width no-break space"
	case r == 0x180E:
		return "Mongolian vowel separator"
	case r >= 0xE0100 && r <= 0xE01EF:
		return "variation selector"
	case r == 0x115F, r == 0x1160, r == 0x3164, r == 0xFFA0:
		return "invisible filler"
	case unicode.Is(unicode.Cf, r):
		return "format character"
	}
	return ""
}

// needsVisibleEscape reports whether r is escaped in the lockfile so that
// a reviewer sees it: hidden characters, other non-printing characters
// (line and paragraph separators, private use, unassigned) and DEL.
func needsVisibleEscape(r rune) bool {
	if r < 0x80 {
		return r == 0x7f
	}
	return hiddenClass(r) != "" || !unicode.IsPrint(r) && !unicode.IsSpace(r) || r == 0x2028 || r == 0x2029 || r == 0x85
}

// confusables maps common Cyrillic and Greek look-alikes (and fullwidth
// forms, handled in fold) to the ASCII letters they imitate.
var confusables = map[rune]rune{
	// Cyrillic lower case
	'а': 'a', 'е': 'e', 'к': 'k', 'о': 'o', 'р': 'p', 'с': 'c',
	'у': 'y', 'х': 'x', 'і': 'i', 'ј': 'j', 'ѕ': 's', 'һ': 'h', 'ԁ': 'd', 'ԛ': 'q', 'ԝ': 'w', 'ӏ': 'l', 'ү': 'y', 'ɡ': 'g',
	// Cyrillic upper case
	'А': 'A', 'В': 'B', 'Е': 'E', 'К': 'K', 'М': 'M', 'Н': 'H', 'О': 'O', 'Р': 'P', 'С': 'C', 'Т': 'T',
	'У': 'Y', 'Х': 'X', 'І': 'I', 'Ј': 'J', 'Ѕ': 'S', 'Ԁ': 'D', 'Ԛ': 'Q', 'Ԝ': 'W', 'Ӏ': 'I',
	// Greek lower case
	'ο': 'o', 'α': 'a', 'ν': 'v', 'ι': 'i', 'κ': 'k', 'ρ': 'p', 'υ': 'u', 'χ': 'x',
	// Greek upper case
	'Α': 'A', 'Β': 'B', 'Ε': 'E', 'Ζ': 'Z', 'Η': 'H', 'Ι': 'I', 'Κ': 'K', 'Μ': 'M', 'Ν': 'N', 'Ο': 'O',
	'Ρ': 'P', 'Τ': 'T', 'Υ': 'Y', 'Χ': 'X',
}

// deconfuse maps a look-alike rune to the ASCII it imitates (fullwidth
// forms included); other runes are returned unchanged.
func deconfuse(r rune) rune {
	if c, ok := confusables[r]; ok {
		return c
	}
	if r >= 0xFF01 && r <= 0xFF5E { // fullwidth ASCII
		return r - 0xFEE0
	}
	return r
}

// normalized is a text prepared for phrase matching, with a map back to
// the original's byte offsets.
type normalized struct {
	text string // lower case, hidden characters dropped (tag characters decoded), look-alikes mapped to ASCII, quotes straightened, white space collapsed
	orig []int  // orig[i] is the offset in the original of text[i]; orig[len(text)] is len(original)
}

// normalize prepares s for matching: what a model reads, not what a
// reviewer sees. Tag characters U+E0020–U+E007E become the ASCII they
// encode; other hidden characters vanish.
func normalize(s string) normalized {
	var b strings.Builder
	orig := make([]int, 0, len(s)+1)
	space := false
	for i, r := range s {
		switch {
		case r >= 0xE0020 && r <= 0xE007E:
			r -= 0xE0000
		case hiddenClass(r) != "":
			continue
		case r == '\u2018', r == '\u2019', r == '\u02BC', r == '\u2032':
			r = '\''
		default:
			r = deconfuse(r)
		}
		if unicode.IsSpace(r) {
			if space {
				continue
			}
			space = true
			r = ' '
		} else {
			space = false
		}
		r = unicode.ToLower(r)
		n := b.Len()
		b.WriteRune(r)
		for j := n; j < b.Len(); j++ {
			orig = append(orig, i)
		}
	}
	orig = append(orig, len(s))
	return normalized{text: b.String(), orig: orig}
}

// isWordRune reports whether r continues a word (for phrase boundaries).
func isWordRune(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsDigit(r)
}

// isNameRune reports whether r continues a tool name.
func isNameRune(r rune) bool {
	return isWordRune(r) || r == '_' || r == '-'
}

// findBounded finds the first occurrence of phrase in text such that a
// phrase starting (ending) with a word character does not continue a word
// before (after) it, as decided by word. With plural set, an "s" may
// follow the phrase. It returns the match's start and end, or -1.
func findBounded(text, phrase string, word func(rune) bool, plural bool) (int, int) {
	first, _ := utf8.DecodeRuneInString(phrase)
	last, _ := utf8.DecodeLastRuneInString(phrase)
	for from := 0; from <= len(text); {
		i := strings.Index(text[from:], phrase)
		if i < 0 {
			return -1, -1
		}
		start := from + i
		end := start + len(phrase)
		from = start + 1
		if word(first) && start > 0 {
			if r, _ := utf8.DecodeLastRuneInString(text[:start]); word(r) {
				continue
			}
		}
		if word(last) && end < len(text) {
			if plural && text[end] == 's' {
				end++
			}
			if end < len(text) {
				if r, _ := utf8.DecodeRuneInString(text[end:]); word(r) {
					continue
				}
			}
		}
		return start, end
	}
	return -1, -1
}

// snippet quotes s[start:end] with some context around it, %q-style, in
// at most max characters; "…" marks text cut on either side.
func snippet(s string, start, end, max int) string {
	if start < 0 {
		start = 0
	}
	if end > len(s) {
		end = len(s)
	}
	// Shrink the match itself if even it alone is too long (a quoted
	// character takes at least one character).
	if end-start > 4*max {
		end = start + 4*max
		for end > start && !utf8.RuneStart(s[end]) {
			end--
		}
	}
	for end > start && utf8.RuneCountInString(strconv.Quote(s[start:end])) > max-2 {
		end = prevRune(s, end)
	}
	lo, hi := start, end
	for ctx := 0; ctx < 60; ctx++ {
		nlo, nhi := lo, hi
		if ctx%2 == 0 && nlo > 0 {
			nlo = prevRune(s, nlo)
		} else if nhi < len(s) {
			nhi = nextRune(s, nhi)
		} else if nlo > 0 {
			nlo = prevRune(s, nlo)
		} else {
			break
		}
		if utf8.RuneCountInString(quoteCut(s, nlo, nhi)) > max {
			break
		}
		lo, hi = nlo, nhi
	}
	return quoteCut(s, lo, hi)
}

func quoteCut(s string, lo, hi int) string {
	q := strconv.Quote(s[lo:hi])
	if lo > 0 {
		q = "…" + q
	}
	if hi < len(s) {
		q += "…"
	}
	return q
}

func prevRune(s string, i int) int {
	_, n := utf8.DecodeLastRuneInString(s[:i])
	if n == 0 {
		return i
	}
	return i - n
}

func nextRune(s string, i int) int {
	_, n := utf8.DecodeRuneInString(s[i:])
	return i + n
}
