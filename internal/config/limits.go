package config

import (
	"maps"
	"math"
	"slices"
)

// Limits configures rate and concurrency limits. Every limit is keyed by the
// authenticated principal (never by client address), and the limiters'
// memory is bounded by MaxTrackedPrincipals and ConcurrentTotal.
type Limits struct {
	// PerPrincipal limits each principal's requests to the MCP endpoint.
	PerPrincipal PrincipalLimits `yaml:"per_principal"`
	// PerPrincipalTool limits each principal's tools/call of one tool.
	// Rate 0 (the default) turns it off.
	PerPrincipalTool RateLimit `yaml:"per_principal_tool"`
	// ConcurrentTotal caps the POST requests being served at once, by all
	// principals together.
	ConcurrentTotal int `yaml:"concurrent_total"`
	// MaxTrackedPrincipals caps the keys each rate limiter remembers; past
	// it, the least recently seen key is forgotten.
	MaxTrackedPrincipals int `yaml:"max_tracked_principals"`
	// Sessions caps the legacy-era (2025-11-25) sessions open at once.
	Sessions SessionLimits `yaml:"sessions"`
	// Roles replaces PerPrincipal for principals holding a role: a
	// principal with several such roles gets the one with the highest rate.
	Roles map[string]PrincipalLimits `yaml:"roles"`
}

// UpstreamLimits caps the calls to one upstream (upstreams.<name>.limits).
type UpstreamLimits struct {
	// Concurrent caps this upstream's calls in flight, all principals
	// together.
	Concurrent int `yaml:"concurrent"`
}

// SessionLimits caps open sessions in total and per principal. A new
// session past a cap takes the place of the oldest idle one (the one with
// no request or event stream in progress, unused for longest); with none
// idle, it is refused.
type SessionLimits struct {
	Total        int `yaml:"total"`
	PerPrincipal int `yaml:"per_principal"`
}

// PrincipalLimits is a token bucket plus a cap on calls in flight.
type PrincipalLimits struct {
	// Rate is the sustained requests per second; Burst how many may come at
	// once. Zero means the default: these limits cannot be turned off, only raised.
	Rate  float64 `yaml:"rate"`
	Burst int     `yaml:"burst"`
	// Concurrent caps the principal's POST requests being served at once.
	Concurrent int `yaml:"concurrent"`
}

// RateLimit is a token bucket: Rate per second, Burst at once. Rate 0 is off.
type RateLimit struct {
	Rate  float64 `yaml:"rate"`
	Burst int     `yaml:"burst"`
}

// Limit defaults.
const (
	DefaultPrincipalRate        = 20
	DefaultPrincipalBurst       = 40
	DefaultPrincipalConcurrent  = 8
	DefaultConcurrentTotal      = 256
	DefaultMaxTrackedPrincipals = 100_000
	DefaultSessionsTotal        = 4096
	DefaultSessionsPerPrincipal = 128

	// Bounds beyond which a value is surely a mistake.
	maxLimitRate    = 1e6
	maxLimitCount   = 1_000_000
	maxTrackedLimit = 10_000_000
	minLimitRate    = 0.001 // one request in about 17 minutes
)

func (l *Limits) applyDefaults() {
	setDefault(&l.PerPrincipal.Rate, DefaultPrincipalRate)
	setDefault(&l.PerPrincipal.Burst, DefaultPrincipalBurst)
	setDefault(&l.PerPrincipal.Concurrent, DefaultPrincipalConcurrent)
	setDefault(&l.ConcurrentTotal, DefaultConcurrentTotal)
	setDefault(&l.MaxTrackedPrincipals, DefaultMaxTrackedPrincipals)
	setDefault(&l.Sessions.Total, DefaultSessionsTotal)
	setDefault(&l.Sessions.PerPrincipal, DefaultSessionsPerPrincipal)
}

func (c *Config) validateLimits(add addFunc) {
	l := c.Limits
	checkRate := func(key string, r float64, off bool) {
		switch {
		case math.IsNaN(r) || math.IsInf(r, 0) || r < 0:
			add(key, "must be a number of requests per second, 0 or more")
		case r == 0 && off:
		case r < minLimitRate || r > maxLimitRate:
			add(key, "must be from %g to %g requests per second", minLimitRate, maxLimitRate)
		}
	}
	checkCount := func(key string, n, limit int) {
		if n < 1 || n > limit {
			add(key, "must be from 1 to %d", limit)
		}
	}
	checkRate("limits.per_principal.rate", l.PerPrincipal.Rate, false)
	checkCount("limits.per_principal.burst", l.PerPrincipal.Burst, maxLimitCount)
	checkCount("limits.per_principal.concurrent", l.PerPrincipal.Concurrent, maxLimitCount)
	checkCount("limits.sessions.total", l.Sessions.Total, maxLimitCount)
	checkCount("limits.sessions.per_principal", l.Sessions.PerPrincipal, maxLimitCount)
	if l.Sessions.PerPrincipal > l.Sessions.Total {
		add("limits.sessions.per_principal", "is more than limits.sessions.total (%d)", l.Sessions.Total)
	}
	t := l.PerPrincipalTool
	checkRate("limits.per_principal_tool.rate", t.Rate, true)
	switch {
	case t.Rate == 0 && t.Burst != 0:
		add("limits.per_principal_tool.burst", "is set but limits.per_principal_tool.rate is 0 (off); set a rate too")
	case t.Rate > 0:
		checkCount("limits.per_principal_tool.burst", t.Burst, maxLimitCount)
	}
	for _, role := range slices.Sorted(maps.Keys(l.Roles)) {
		r, key := l.Roles[role], "limits.roles."+role
		if !ValidID(role) {
			add(key, "%q is not a role name", role)
		}
		checkRate(key+".rate", r.Rate, false)
		checkCount(key+".burst", r.Burst, maxLimitCount)
		checkCount(key+".concurrent", r.Concurrent, maxLimitCount)
	}
	for _, name := range slices.Sorted(maps.Keys(c.Upstreams)) {
		u, key := c.Upstreams[name], "upstreams."+name
		if u.Limits != nil {
			checkCount(key+".limits.concurrent", u.Limits.Concurrent, maxLimitCount)
		}
		for _, tool := range slices.Sorted(maps.Keys(u.Tools)) {
			if t := u.Tools[tool].Limit; t != nil {
				checkRate(key+".tools."+tool+".limit.rate", t.Rate, false)
				checkCount(key+".tools."+tool+".limit.burst", t.Burst, maxLimitCount)
			}
		}
	}
	checkCount("limits.concurrent_total", l.ConcurrentTotal, maxLimitCount)
	checkCount("limits.max_tracked_principals", l.MaxTrackedPrincipals, maxTrackedLimit)
}
