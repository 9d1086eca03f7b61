package policy

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/mcpgate/mcpgate/internal/config"
)

// Subject is who makes a request, as authentication established it.
type Subject struct {
	ID     string
	Roles  []string
	Scopes []string
	// Authenticated is false for the anonymous caller of a gateway with
	// authentication disabled; such a caller matches only "*" rules.
	Authenticated bool
}

// Kind is what a request is about.
type Kind string

// The kinds of target.
const (
	Tool     Kind = "tool"
	Resource Kind = "resource"
	Prompt   Kind = "prompt"
)

// Request is one use of a tool, resource or prompt.
type Request struct {
	Kind Kind
	// Name is the tool or prompt name as the client sees it, or the resource URI.
	Name string
	// Args are the tool or prompt arguments (decoded JSON); nil for resources.
	Args map[string]any
}

// Decision is the outcome of Decide.
type Decision struct {
	Allow bool
	// Rule names the rule that made the decision; "" when no rule matched.
	Rule string
	// Reason says why, for logs, audit records and error messages.
	Reason string
}

// Policy is a compiled policy. It is immutable and safe for concurrent use.
type Policy struct {
	rules []rule
	// index[kind][effect] finds the rules that may apply to a subject and a
	// kind of request, in rule order.
	index [numKinds][2]subjectIndex
}

const numKinds = 3

const (
	effectAllow = 0
	effectDeny  = 1
)

type rule struct {
	pos     int
	name    string
	deny    bool
	targets [numKinds]globs
	cond    *condition
	src     config.PolicyRule
}

// subjectIndex lists, in rule order, the rules for every principal ("*"),
// for each role and for each principal id.
type subjectIndex struct {
	star        []int
	byRole      map[string][]int
	byPrincipal map[string][]int
}

var denyAll = &Policy{}

// DenyAll returns the policy in force when no valid policy is loaded: it
// allows nothing.
func DenyAll() *Policy { return denyAll }

// Compile checks a policy's shape, compiles its globs and type-checks and
// compiles its CEL conditions. The error names every rule that is wrong.
func Compile(p config.Policy) (*Policy, error) {
	p.Rules = slices.Clone(p.Rules)
	for i := range p.Rules {
		if p.Rules[i].Name == "" {
			p.Rules[i].Name = config.DefaultRuleName(i)
		}
	}
	if ps := p.Validate(); len(ps) > 0 {
		return nil, ps
	}
	env, err := newEnv()
	if err != nil {
		return nil, fmt.Errorf("policy: CEL environment: %w", err)
	}
	out := &Policy{rules: make([]rule, 0, len(p.Rules))}
	var errs []error
	for i, src := range p.Rules {
		r := rule{pos: i, name: src.Name, deny: src.Deny != nil, src: src}
		t := src.Allow
		if r.deny {
			t = src.Deny
		}
		for k, patterns := range [numKinds][]string{t.Tools, t.Resources, t.Prompts} {
			for _, pat := range patterns {
				g, err := compileGlob(pat)
				if err != nil {
					errs = append(errs, fmt.Errorf("%s: %w", ruleKey(i, src.Name), err))
					continue
				}
				r.targets[k] = append(r.targets[k], g)
			}
		}
		if src.When != "" {
			c, err := compileCondition(env, src.When)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s.when: %w", ruleKey(i, src.Name), err))
			}
			r.cond = c
		}
		out.rules = append(out.rules, r)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	for i, r := range out.rules {
		effect := effectAllow
		if r.deny {
			effect = effectDeny
		}
		for k := range numKinds {
			if len(r.targets[k]) > 0 {
				out.index[k][effect].add(i, r.src)
			}
		}
	}
	return out, nil
}

func ruleKey(i int, name string) string {
	return fmt.Sprintf("policy.rules[%d] (%q)", i, name)
}

func (x *subjectIndex) add(i int, r config.PolicyRule) {
	if slices.Contains(r.Roles, config.PolicyWildcard) || slices.Contains(r.Principals, config.PolicyWildcard) {
		x.star = append(x.star, i)
		return
	}
	if x.byRole == nil {
		x.byRole, x.byPrincipal = map[string][]int{}, map[string][]int{}
	}
	for _, role := range dedupe(r.Roles) {
		x.byRole[role] = append(x.byRole[role], i)
	}
	for _, id := range dedupe(r.Principals) {
		x.byPrincipal[id] = append(x.byPrincipal[id], i)
	}
}

func dedupe(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return slices.Compact(s)
}

func kindIndex(k Kind) int {
	switch k {
	case Tool:
		return 0
	case Resource:
		return 1
	case Prompt:
		return 2
	}
	return -1
}

// candidates calls fn with each rule of x that applies to s, in rule order,
// each once, until fn returns false.
func (x *subjectIndex) candidates(s Subject, fn func(i int) bool) {
	var buf [8][]int
	lists := append(buf[:0], x.star)
	if s.Authenticated && x.byRole != nil {
		if l := x.byPrincipal[s.ID]; len(l) > 0 {
			lists = append(lists, l)
		}
		for _, role := range s.Roles {
			if l := x.byRole[role]; len(l) > 0 {
				lists = append(lists, l)
			}
		}
	}
	if len(lists) == 1 {
		for _, i := range lists[0] {
			if !fn(i) {
				return
			}
		}
		return
	}
	// Merge the sorted lists, skipping an index already seen (a rule naming
	// both the principal and one of its roles).
	last := -1
	for {
		next := -1
		for _, l := range lists {
			if len(l) > 0 && (next < 0 || l[0] < next) {
				next = l[0]
			}
		}
		if next < 0 {
			return
		}
		for j, l := range lists {
			if len(l) > 0 && l[0] == next {
				lists[j] = l[1:]
			}
		}
		if next != last {
			last = next
			if !fn(next) {
				return
			}
		}
	}
}

// Decide says whether s may make request r. Deny rules win: a matching deny
// rule whose condition is true, or cannot be evaluated, denies. Otherwise
// the first matching allow rule whose condition is true (or that has none)
// allows. Otherwise the request is denied.
func (p *Policy) Decide(s Subject, r Request) Decision {
	if p == nil {
		p = denyAll
	}
	k := kindIndex(r.Kind)
	if k < 0 {
		return Decision{Reason: fmt.Sprintf("unknown request kind %q", r.Kind)}
	}
	var act *activation
	eval := func(c *condition) (bool, error) {
		if act == nil {
			act = newActivation(s, r)
		}
		return c.eval(act)
	}

	var d Decision
	decided := false
	p.index[k][effectDeny].candidates(s, func(i int) bool {
		ru := &p.rules[i]
		if !ru.targets[k].match(r.Name) {
			return true
		}
		if ru.cond == nil {
			d, decided = Decision{Rule: ru.name, Reason: fmt.Sprintf("denied by rule %q", ru.name)}, true
			return false
		}
		ok, err := eval(ru.cond)
		switch {
		case err != nil:
			d, decided = Decision{Rule: ru.name, Reason: fmt.Sprintf(
				"denied by rule %q: its condition could not be evaluated: %v", ru.name, err)}, true
		case ok:
			d, decided = Decision{Rule: ru.name, Reason: fmt.Sprintf("denied by rule %q", ru.name)}, true
		}
		return !decided
	})
	if decided {
		return d
	}

	var falseRule *rule
	var falseErr error
	p.index[k][effectAllow].candidates(s, func(i int) bool {
		ru := &p.rules[i]
		if !ru.targets[k].match(r.Name) {
			return true
		}
		if ru.cond != nil {
			ok, err := eval(ru.cond)
			if !ok {
				falseRule, falseErr = ru, err
				return true
			}
		}
		d, decided = Decision{Allow: true, Rule: ru.name, Reason: fmt.Sprintf("allowed by rule %q", ru.name)}, true
		return false
	})
	switch {
	case decided:
		return d
	case falseRule != nil && falseErr != nil:
		return Decision{Rule: falseRule.name, Reason: fmt.Sprintf(
			"condition of rule %q could not be evaluated: %v", falseRule.name, falseErr)}
	case falseRule != nil:
		return Decision{Rule: falseRule.name, Reason: fmt.Sprintf("condition of rule %q is false", falseRule.name)}
	}
	return Decision{Reason: fmt.Sprintf("no rule allows %s %q for %s", r.Kind, r.Name, describeSubject(s))}
}

func describeSubject(s Subject) string {
	if !s.Authenticated {
		return "the anonymous principal"
	}
	return fmt.Sprintf("principal %q", s.ID)
}

// Visible says whether a list (tools/list, resources/list, prompts/list)
// shows name to s: some allow rule for s matches it, whatever its condition
// (a tool whose every use is conditional stays listed), and no deny rule
// without a condition matches it.
func (p *Policy) Visible(s Subject, kind Kind, name string) bool {
	if p == nil {
		return false
	}
	k := kindIndex(kind)
	if k < 0 {
		return false
	}
	denied := false
	p.index[k][effectDeny].candidates(s, func(i int) bool {
		ru := &p.rules[i]
		denied = ru.cond == nil && ru.targets[k].match(name)
		return !denied
	})
	if denied {
		return false
	}
	allowed := false
	p.index[k][effectAllow].candidates(s, func(i int) bool {
		allowed = p.rules[i].targets[k].match(name)
		return !allowed
	})
	return allowed
}

// Describe summarises the named rule for people, e.g.
// `allow tools files.read_*; resources file:///data/** when args.path.startsWith("/data/")`;
// "" if there is no such rule.
func (p *Policy) Describe(ruleName string) string {
	if p == nil {
		return ""
	}
	for _, r := range p.rules {
		if r.name != ruleName {
			continue
		}
		var b strings.Builder
		if r.deny {
			b.WriteString("deny ")
		} else {
			b.WriteString("allow ")
		}
		var parts []string
		for k, label := range [numKinds]string{"tools", "resources", "prompts"} {
			if len(r.targets[k]) > 0 {
				parts = append(parts, label+" "+r.targets[k].String())
			}
		}
		b.WriteString(strings.Join(parts, "; "))
		if r.cond != nil {
			fmt.Fprintf(&b, " when %s", r.cond.source)
		}
		return b.String()
	}
	return ""
}

// Findings lists what looks risky or mistaken in the policy, for
// `mcpgate check`: grants to every principal, rules that name roles or
// principals no API key has (knownRoles, knownPrincipals: those of the
// configured API keys; JWT principals are unknown, so these are warnings),
// conditions that are always true, and an empty policy.
func (p *Policy) Findings(knownRoles, knownPrincipals []string) []string {
	if p == nil || len(p.rules) == 0 {
		return []string{"policy: no rules: every call is denied"}
	}
	var out []string
	for _, r := range p.rules {
		key := ruleKey(r.pos, r.name)
		star := slices.Contains(r.src.Roles, config.PolicyWildcard) || slices.Contains(r.src.Principals, config.PolicyWildcard)
		switch {
		case star && !r.deny:
			out = append(out, fmt.Sprintf("%s: grants to every principal (\"*\")", key))
		case !star:
			out = append(out, unknownSubjects(key, r.src, knownRoles, knownPrincipals)...)
		}
		if r.cond != nil && r.cond.alwaysTrue {
			out = append(out, fmt.Sprintf("%s: condition is always true", key))
		}
	}
	return out
}

func unknownSubjects(key string, r config.PolicyRule, knownRoles, knownPrincipals []string) []string {
	var unknown []string
	for _, role := range dedupe(r.Roles) {
		if !slices.Contains(knownRoles, role) {
			unknown = append(unknown, fmt.Sprintf("role %q", role))
		}
	}
	for _, id := range dedupe(r.Principals) {
		if !slices.Contains(knownPrincipals, id) {
			unknown = append(unknown, fmt.Sprintf("principal %q", id))
		}
	}
	switch {
	case len(unknown) == 0:
		return nil
	case len(unknown) == len(dedupe(r.Roles))+len(dedupe(r.Principals)):
		return []string{fmt.Sprintf("%s: no API key can reach this rule: it names only %s, which no API key has (a JWT principal may)",
			key, strings.Join(unknown, ", "))}
	}
	out := make([]string, len(unknown))
	for i, u := range unknown {
		out[i] = fmt.Sprintf("%s: names %s that no API key has", key, u)
	}
	return out
}
