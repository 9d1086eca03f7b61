package policy

import (
	"encoding/json"
	"testing"

	"github.com/mcpgate/mcpgate/internal/config"
)

// fuzzPolicy allows only names under fixed prefixes, with conditions that
// poke at the arguments in every way a policy author might.
func fuzzPolicy(t testing.TB) *Policy {
	return mustCompile(t,
		config.PolicyRule{Name: "a", Principals: []string{"*"}, Allow: tools("files.read_*"),
			When: `args.path.startsWith("/data/") && size(args.query) < 200`},
		config.PolicyRule{Name: "b", Principals: []string{"*"}, Allow: tools("db.*"),
			When: `has(args.n) && args.n > 3 || args.list.exists(x, x == "y") || args.m.k.matches("^a+$")`},
		config.PolicyRule{Name: "c", Principals: []string{"*"}, Allow: tools("open.*")},
		config.PolicyRule{Name: "d", Principals: []string{"*"}, Deny: tools("open.x*"), When: `args.x + 1 == 2`},
		config.PolicyRule{Name: "e", Principals: []string{"*"}, Allow: &config.PolicyTargets{
			Resources: []string{"file:///data/**"}, Prompts: []string{"p?"}}, When: `name.size() > 0 && kind != "" && principal.id == ""`},
	)
}

func FuzzDecide(f *testing.F) {
	p := fuzzPolicy(f)
	f.Add("files.read_x", `{"path":"/data/a","query":"q"}`, uint8(0))
	f.Add("db.q", `{"n":4,"list":["y"],"m":{"k":"aaa"}}`, uint8(0))
	f.Add("db.q", `{"n":"4","list":1,"m":null}`, uint8(0))
	f.Add("open.xyz", `{"x":1}`, uint8(0))
	f.Add("file:///data/a/b", `null`, uint8(1))
	f.Add("p1", `{"a":[[[[{}]]]]}`, uint8(2))
	f.Add("other", `{"path":"/data/"}`, uint8(0))
	f.Fuzz(func(t *testing.T, name, argsJSON string, kindByte uint8) {
		var args map[string]any
		_ = json.Unmarshal([]byte(argsJSON), &args) // anything that is not an object stays nil
		kind := []Kind{Tool, Resource, Prompt, "other"}[kindByte%4]
		r := Request{Kind: kind, Name: name, Args: args}
		for _, s := range []Subject{{}, alice} {
			d := p.Decide(s, r)
			_ = p.Visible(s, kind, name)
			if d.Allow && !anyGlobMatches(p, kind, name) {
				t.Fatalf("%+v allowed though no rule's glob matches: %+v", r, d)
			}
			if d.Allow && d.Rule == "" || d.Reason == "" {
				t.Fatalf("decision without rule or reason: %+v", d)
			}
		}
	})
}

func anyGlobMatches(p *Policy, kind Kind, name string) bool {
	k := kindIndex(kind)
	if k < 0 {
		return false
	}
	for _, r := range p.rules {
		if !r.deny && r.targets[k].match(name) {
			return true
		}
	}
	return false
}
