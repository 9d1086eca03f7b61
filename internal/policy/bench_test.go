package policy

import (
	"fmt"
	"testing"

	"github.com/mcpgate/mcpgate/internal/config"
)

// benchPolicy has 1,000 rules over 50 roles: every third with a CEL
// condition, every tenth a deny, with exact, prefix and inner-wildcard globs.
func benchPolicy(b *testing.B) *Policy {
	rules := make([]config.PolicyRule, 1000)
	for i := range rules {
		r := config.PolicyRule{Name: fmt.Sprintf("r%d", i), Roles: []string{fmt.Sprintf("role%d", i%50)}}
		targets := &config.PolicyTargets{
			Tools:     []string{fmt.Sprintf("up%d.tool_%d", i%20, i), fmt.Sprintf("up%d.read_*", i%20), fmt.Sprintf("up%d.*_%d_x", i%20, i)},
			Resources: []string{fmt.Sprintf("file:///data/%d/**", i)},
		}
		if i%10 == 9 {
			r.Deny = targets
		} else {
			r.Allow = targets
		}
		if i%3 == 0 {
			r.When = fmt.Sprintf(`args.path.startsWith("/data/%d/") && size(args.query) < 200`, i%7)
		}
		rules[i] = r
	}
	p, err := Compile(config.Policy{Rules: rules})
	if err != nil {
		b.Fatal(err)
	}
	return p
}

func BenchmarkDecide(b *testing.B) {
	p := benchPolicy(b)
	s := Subject{ID: "svc", Roles: []string{"role3", "role9", "role17", "role42"}, Authenticated: true}
	args := map[string]any{"path": "/data/3/report.csv", "query": "select"}
	for _, tc := range []struct {
		name  string
		r     Request
		allow bool
	}{
		// role3's rules include r3 (conditional, true for this path) and r53, r103, ...
		{"allowed", Request{Kind: Tool, Name: "up3.tool_3", Args: args}, true},
		{"denied", Request{Kind: Tool, Name: "up5.write", Args: args}, false},
	} {
		if d := p.Decide(s, tc.r); d.Allow != tc.allow {
			b.Fatalf("%s: %+v", tc.name, d)
		}
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				p.Decide(s, tc.r)
			}
		})
	}
}

func BenchmarkDecideUnconditional(b *testing.B) {
	p := benchPolicy(b)
	s := Subject{ID: "svc", Roles: []string{"role1"}, Authenticated: true}
	r := Request{Kind: Tool, Name: "up1.read_x"}
	if d := p.Decide(s, r); !d.Allow {
		b.Fatalf("%+v", d)
	}
	b.ReportAllocs()
	for b.Loop() {
		p.Decide(s, r)
	}
}
