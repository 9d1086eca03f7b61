package config

import (
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestLimitsDefaultsAreOn(t *testing.T) {
	l := Default().Limits
	want := Limits{
		PerPrincipal:         PrincipalLimits{Rate: DefaultPrincipalRate, Burst: DefaultPrincipalBurst, Concurrent: DefaultPrincipalConcurrent},
		ConcurrentTotal:      DefaultConcurrentTotal,
		MaxTrackedPrincipals: DefaultMaxTrackedPrincipals,
		Sessions:             SessionLimits{Total: DefaultSessionsTotal, PerPrincipal: DefaultSessionsPerPrincipal},
	}
	if !reflect.DeepEqual(l, want) {
		t.Fatalf("default limits %+v, want %+v", l, want)
	}
}

func TestLimitsValidation(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Limits)
		want string // "" means valid
	}{
		{"default", func(*Limits) {}, ""},
		{"fractional rate", func(l *Limits) { l.PerPrincipal.Rate = 0.5 }, ""},
		{"negative rate", func(l *Limits) { l.PerPrincipal.Rate = -1 }, "limits.per_principal.rate: must be a number"},
		{"NaN rate", func(l *Limits) { l.PerPrincipal.Rate = math.NaN() }, "limits.per_principal.rate: must be a number"},
		{"absurd rate", func(l *Limits) { l.PerPrincipal.Rate = 1e9 }, "limits.per_principal.rate: must be from"},
		{"negative burst", func(l *Limits) { l.PerPrincipal.Burst = -1 }, "limits.per_principal.burst: must be from 1"},
		{"negative concurrent", func(l *Limits) { l.PerPrincipal.Concurrent = -1 }, "limits.per_principal.concurrent: must be from 1"},
		{"tool limit on", func(l *Limits) { l.PerPrincipalTool = RateLimit{Rate: 2, Burst: 5} }, ""},
		{"tool rate without burst", func(l *Limits) { l.PerPrincipalTool.Rate = 2 }, "limits.per_principal_tool.burst: must be from 1"},
		{"tool burst without rate", func(l *Limits) { l.PerPrincipalTool.Burst = 5 }, "limits.per_principal_tool.burst: is set but"},
		{"tool negative rate", func(l *Limits) { l.PerPrincipalTool = RateLimit{Rate: -2, Burst: 5} }, "limits.per_principal_tool.rate: must be a number"},
		{"total", func(l *Limits) { l.ConcurrentTotal = -3 }, "limits.concurrent_total: must be from 1"},
		{"tracked", func(l *Limits) { l.MaxTrackedPrincipals = 100_000_000 }, "limits.max_tracked_principals: must be from 1 to 10000000"},
		{"sessions total", func(l *Limits) { l.Sessions.Total = -1 }, "limits.sessions.total: must be from 1"},
		{"role", func(l *Limits) {
			l.Roles = map[string]PrincipalLimits{"batch": {Rate: 100, Burst: 200, Concurrent: 32}}
		}, ""},
		{"role without burst", func(l *Limits) { l.Roles = map[string]PrincipalLimits{"batch": {Rate: 100, Concurrent: 32}} }, "limits.roles.batch.burst: must be from 1"},
		{"role bad name", func(l *Limits) { l.Roles = map[string]PrincipalLimits{"a b": {Rate: 1, Burst: 1, Concurrent: 1}} }, `limits.roles.a b: "a b" is not a role name`},
		{"sessions per principal over total", func(l *Limits) { l.Sessions = SessionLimits{Total: 10, PerPrincipal: 11} }, "limits.sessions.per_principal: is more than limits.sessions.total (10)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			c.Auth.InsecureDisableAuth = true
			tc.edit(&c.Limits)
			got := c.Validate().Error()
			if tc.want == "" && got != "" || tc.want != "" && !strings.Contains(got, tc.want) {
				t.Fatalf("problems %q, want %q", got, tc.want)
			}
		})
	}
}

func TestLimitsFromYAML(t *testing.T) {
	src := `
auth: {insecure_disable_auth: true}
upstreams: {demo: {builtin: demo, namespace: "", insecure_no_sandbox: true}}
limits:
  per_principal: {rate: 2.5, burst: 10, concurrent: 3}
  per_principal_tool: {rate: 1, burst: 2}
  concurrent_total: 64
  max_tracked_principals: 5000
  sessions: {total: 100, per_principal: 10}
  roles: {batch: {rate: 100, burst: 200, concurrent: 32}}
`
	c, err := Parse("mcpgate.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	want := Limits{PrincipalLimits{2.5, 10, 3}, RateLimit{1, 2}, 64, 5000, SessionLimits{100, 10},
		map[string]PrincipalLimits{"batch": {100, 200, 32}}}
	if !reflect.DeepEqual(c.Limits, want) {
		t.Fatalf("limits %+v, want %+v", c.Limits, want)
	}
	_, err = Parse("mcpgate.yaml", []byte(strings.Replace(src, "concurrent_total", "concurent_total", 1)))
	if err == nil || !strings.Contains(err.Error(), "limits.concurent_total") {
		t.Fatalf("misspelt key: %v", err)
	}
	_, err = Parse("mcpgate.yaml", []byte(strings.Replace(src, "rate: 1,", "rate: -1,", 1)))
	if err == nil || !strings.Contains(err.Error(), "mcpgate.yaml:6: limits.per_principal_tool.rate") {
		t.Fatalf("bad tool rate: %v", err)
	}
}
