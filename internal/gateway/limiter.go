package gateway

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/mcpgate/mcpgate/internal/authn"
	"github.com/mcpgate/mcpgate/internal/config"
	"github.com/mcpgate/mcpgate/internal/limits"
	"github.com/mcpgate/mcpgate/internal/strictjson"
	"github.com/mcpgate/mcpgate/internal/telemetry"
)

// callLimiter holds every configured rate and concurrency limit and decides,
// for one request, which apply: the principal's (its most generous role's,
// else the default), the principal-and-tool buckets (global and per tool),
// the upstream's cap of calls in flight and the gateway's total. The HTTP
// front and the stdio front ask the same questions of it.
type callLimiter struct {
	principal   *limits.Buckets     // the default per-principal bucket
	concurrency *limits.Concurrency // the default per-principal cap
	roles       []roleLimiter       // most generous first
	tool        *limits.Buckets     // per principal and tool, every tool; nil: off
	tools       map[string]*limits.Buckets
	total       *limits.Concurrency // the whole gateway: one key
	upstreams   map[string]*limits.Concurrency
	// upstreamOf names the upstream serving a tool, prompt or resource
	// (upstream.Catalog.UpstreamOf); nil when no upstream has a cap.
	upstreamOf func(kind, name string) string
}

// roleLimiter is limits.roles.<role>: it replaces the default limits for a
// principal holding the role.
type roleLimiter struct {
	role        string
	rate        float64
	bucket      *limits.Buckets
	concurrency *limits.Concurrency
}

func newCallLimiter(cfg *config.Config, upstreamOf func(kind, name string) string) *callLimiter {
	lim := cfg.Limits
	l := &callLimiter{
		principal:   limits.NewBuckets(lim.PerPrincipal.Rate, lim.PerPrincipal.Burst, lim.MaxTrackedPrincipals, nil),
		concurrency: limits.NewConcurrency(lim.PerPrincipal.Concurrent, lim.ConcurrentTotal),
		tool:        limits.NewBuckets(lim.PerPrincipalTool.Rate, lim.PerPrincipalTool.Burst, lim.MaxTrackedPrincipals, nil),
		total:       limits.NewConcurrency(0, lim.ConcurrentTotal),
		tools:       map[string]*limits.Buckets{},
		upstreams:   map[string]*limits.Concurrency{},
	}
	for role, r := range lim.Roles {
		l.roles = append(l.roles, roleLimiter{
			role:        role,
			rate:        r.Rate,
			bucket:      limits.NewBuckets(r.Rate, r.Burst, lim.MaxTrackedPrincipals, nil),
			concurrency: limits.NewConcurrency(r.Concurrent, lim.ConcurrentTotal),
		})
	}
	// The most generous role first (then by name, so the choice is stable).
	slices.SortFunc(l.roles, func(a, b roleLimiter) int {
		return cmp.Or(cmp.Compare(b.rate, a.rate), cmp.Compare(a.role, b.role))
	})
	for name, u := range cfg.Upstreams {
		if u.Limits != nil && u.Limits.Concurrent > 0 {
			l.upstreams[name] = limits.NewConcurrency(0, u.Limits.Concurrent)
		}
		ns := u.UpstreamNamespace(name)
		for tool, t := range u.Tools {
			if t.Limit == nil {
				continue
			}
			exposed := tool
			if ns != "" {
				exposed = ns + "." + tool
			}
			l.tools[exposed] = limits.NewBuckets(t.Limit.Rate, t.Limit.Burst, lim.MaxTrackedPrincipals, nil)
		}
	}
	if len(l.upstreams) > 0 {
		l.upstreamOf = upstreamOf
	}
	return l
}

// forPrincipal is the bucket and cap that govern p: those of its most
// generous role with limits, else the defaults.
func (l *callLimiter) forPrincipal(p *authn.Principal) (*limits.Buckets, *limits.Concurrency) {
	for _, r := range l.roles {
		if slices.Contains(p.Roles, r.role) {
			return r.bucket, r.concurrency
		}
	}
	return l.principal, l.concurrency
}

// allowRate takes a token from each bucket the request draws on. Past one,
// it says how long to wait and which limit it was.
func (l *callLimiter) allowRate(p *authn.Principal, msg *strictjson.Message) (ok bool, wait time.Duration, what string) {
	owner := p.SessionOwner()
	bucket, _ := l.forPrincipal(p)
	if ok, wait = bucket.Allow(owner); !ok {
		return false, wait, "requests"
	}
	if msg == nil || msg.Method != "tools/call" {
		return true, 0, ""
	}
	// The key is the owner, a NUL (which no id contains), the tool name.
	key := owner + "\x00" + msg.Name
	if l.tool != nil {
		if ok, wait = l.tool.Allow(key); !ok {
			return false, wait, "calls of this tool"
		}
	}
	if b := l.tools[msg.Name]; b != nil {
		if ok, wait = b.Allow(key); !ok {
			return false, wait, "calls of this tool"
		}
	}
	return true, 0, ""
}

// acquire takes a slot from each concurrency cap the request is under: the
// principal's, the upstream's (for a call, read or prompt it serves) and the
// gateway's. It returns one release for all, or the client-safe reason.
func (l *callLimiter) acquire(p *authn.Principal, msg *strictjson.Message) (release func(), refused string) {
	_, conc := l.forPrincipal(p)
	var releases []func()
	releaseAll := func() {
		for _, r := range releases {
			r()
		}
	}
	r, why := conc.AcquireReason(p.SessionOwner())
	if why != limits.Granted {
		return nil, "too many calls in flight for this principal; retry when one has finished"
	}
	releases = append(releases, r)
	if name := l.upstreamFor(msg); name != "" {
		if r, ok := l.upstreams[name].Acquire(""); ok {
			releases = append(releases, r)
		} else {
			releaseAll()
			return nil, fmt.Sprintf("upstream %q has too many calls in flight; retry shortly", name)
		}
	}
	if r, ok := l.total.Acquire(""); ok {
		releases = append(releases, r)
	} else {
		releaseAll()
		return nil, "the gateway has too many calls in flight; retry shortly"
	}
	return releaseAll, ""
}

// upstreamFor names the capped upstream msg would reach, or "".
func (l *callLimiter) upstreamFor(msg *strictjson.Message) string {
	if l.upstreamOf == nil || msg == nil {
		return ""
	}
	var name string
	switch msg.Method {
	case "tools/call":
		name = l.upstreamOf("tool", msg.Name)
	case "prompts/get":
		name = l.upstreamOf("prompt", msg.Name)
	case "resources/read", "resources/subscribe":
		name = l.upstreamOf("resource", msg.URI)
	}
	if _, capped := l.upstreams[name]; !capped {
		return ""
	}
	return name
}

// inFlight is the number of requests holding a slot in the gateway's total.
func (l *callLimiter) inFlight() int {
	n, _ := l.total.InFlight("")
	return n
}

// track exports the rate limiters' sizes.
func (l *callLimiter) track(m *telemetry.Metrics) error {
	lims := map[string]telemetry.Limiter{"principal": l.principal, "principal_tool": l.tool}
	for _, r := range l.roles {
		lims["role:"+r.role] = r.bucket
	}
	for name, b := range l.tools {
		lims["tool:"+name] = b
	}
	for name, lim := range lims {
		if err := m.TrackLimiter(name, lim); err != nil {
			return err
		}
	}
	return nil
}
