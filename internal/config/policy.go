package config

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Policy is the authorization policy: which principals may use which tools,
// resources and prompts. It is deny by default: a call no rule allows is
// refused, and an empty policy refuses everything. The rules are compiled
// (CEL conditions type-checked) by internal/policy; here only their shape is
// checked.
type Policy struct {
	Rules []PolicyRule `yaml:"rules"`
}

// PolicyRule grants (Allow) or refuses (Deny) some targets to the principals
// it names, optionally only when its condition holds. A deny rule wins over
// every allow rule.
type PolicyRule struct {
	// Name identifies the rule in decisions, audit records and findings;
	// it defaults to "rules[i]".
	Name string `yaml:"name"`
	// Roles the rule applies to; "*" means every principal.
	Roles []string `yaml:"roles"`
	// Principals (API key ids, JWT subjects) the rule applies to; "*" means
	// every principal.
	Principals []string `yaml:"principals"`
	// Allow and Deny: exactly one is set.
	Allow *PolicyTargets `yaml:"allow"`
	Deny  *PolicyTargets `yaml:"deny"`
	// When is an optional CEL condition over args, principal, name and kind;
	// it must be of type bool.
	When string `yaml:"when"`
}

// PolicyTargets are globs over tool names (as clients see them, with the
// upstream's namespace), resource URIs and prompt names. In a glob, `*`
// matches any run of characters except '/', `**` any run including '/', and
// `?` one character other than '/'; everything else matches itself.
type PolicyTargets struct {
	Tools     []string `yaml:"tools"`
	Resources []string `yaml:"resources"`
	Prompts   []string `yaml:"prompts"`
}

// PolicyWildcard in Roles or Principals matches every principal.
const PolicyWildcard = "*"

// Bounds beyond which a policy value is surely a mistake.
const (
	maxGlobLen = 1024
	maxWhenLen = 4096
)

// DefaultRuleName is the name a rule without one gets: its position.
func DefaultRuleName(i int) string { return fmt.Sprintf("rules[%d]", i) }

func (p *Policy) applyDefaults() {
	for i := range p.Rules {
		setDefault(&p.Rules[i].Name, DefaultRuleName(i))
	}
}

// CheckGlob reports whether s is a valid target glob. Only `*`, `**` and `?`
// are special; characters other globbing dialects give a meaning to ([, ],
// {, }, \) are refused rather than silently taken literally.
func CheckGlob(s string) error {
	switch {
	case s == "":
		return fmt.Errorf("empty pattern")
	case len(s) > maxGlobLen:
		return fmt.Errorf("pattern longer than %d bytes", maxGlobLen)
	case !utf8.ValidString(s):
		return fmt.Errorf("%q is not valid UTF-8", s)
	case strings.Contains(s, "***"):
		return fmt.Errorf("%q: use * (within one path segment) or ** (across segments), not ***", s)
	}
	for _, r := range s {
		if unicode.IsControl(r) || unicode.IsSpace(r) {
			return fmt.Errorf("%q contains a space or control character", s)
		}
		if strings.ContainsRune(`[]{}\`, r) {
			return fmt.Errorf("%q: %q is not supported; patterns know only *, ** and ?", s, r)
		}
	}
	return nil
}

// Validate returns every problem with the policy's shape, with key paths
// from the config's root ("policy.rules[2].allow"). The policy should have
// defaults applied.
func (p Policy) Validate() Problems {
	var ps Problems
	p.validate(func(key, format string, args ...any) {
		ps = append(ps, Problem{Key: key, Message: fmt.Sprintf(format, args...)})
	})
	return ps
}

func (p Policy) validate(add addFunc) {
	names := map[string]int{}
	for i, r := range p.Rules {
		key := fmt.Sprintf("policy.rules[%d]", i)
		switch {
		case r.Name == "":
			add(key+".name", "must not be empty")
		case !ValidID(r.Name) && r.Name != DefaultRuleName(i):
			add(key+".name", "%q must be 1-64 characters of letters, digits and _.@-", r.Name)
		default:
			if j, dup := names[r.Name]; dup {
				add(key+".name", "duplicate rule name %q (also policy.rules[%d])", r.Name, j)
			} else {
				names[r.Name] = i
			}
		}
		if len(r.Roles) == 0 && len(r.Principals) == 0 {
			add(key, "names no one: set roles or principals (\"*\" means every principal)")
		}
		for j, role := range r.Roles {
			if role != PolicyWildcard && !ValidID(role) {
				add(fmt.Sprintf("%s.roles[%d]", key, j), "%q is not a valid role name (or \"*\")", role)
			}
		}
		for j, id := range r.Principals {
			if id != PolicyWildcard && !ValidID(id) {
				add(fmt.Sprintf("%s.principals[%d]", key, j), "%q is not a valid principal id (or \"*\")", id)
			}
		}
		targets, field := r.Allow, "allow"
		switch {
		case r.Allow != nil && r.Deny != nil:
			add(key, "sets both allow and deny; a rule does one or the other")
			targets = nil
		case r.Allow == nil && r.Deny == nil:
			add(key, "sets neither allow nor deny")
		case r.Deny != nil:
			targets, field = r.Deny, "deny"
		}
		if targets != nil {
			targets.validate(key+"."+field, add)
		}
		if len(r.When) > maxWhenLen {
			add(key+".when", "condition longer than %d bytes", maxWhenLen)
		} else if r.When != "" && strings.TrimSpace(r.When) == "" {
			add(key+".when", "is blank; remove it or write a condition")
		}
	}
}

func (t PolicyTargets) validate(key string, add addFunc) {
	if len(t.Tools)+len(t.Resources)+len(t.Prompts) == 0 {
		add(key, "names no target: list tools, resources or prompts")
	}
	for _, f := range []struct {
		name  string
		globs []string
	}{{"tools", t.Tools}, {"resources", t.Resources}, {"prompts", t.Prompts}} {
		for i, g := range f.globs {
			if err := CheckGlob(g); err != nil {
				add(fmt.Sprintf("%s.%s[%d]", key, f.name, i), "%v", err)
			}
		}
	}
}
