package config

import "math"

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
	t := l.PerPrincipalTool
	checkRate("limits.per_principal_tool.rate", t.Rate, true)
	switch {
	case t.Rate == 0 && t.Burst != 0:
		add("limits.per_principal_tool.burst", "is set but limits.per_principal_tool.rate is 0 (off); set a rate too")
	case t.Rate > 0:
		checkCount("limits.per_principal_tool.burst", t.Burst, maxLimitCount)
	}
	checkCount("limits.concurrent_total", l.ConcurrentTotal, maxLimitCount)
	checkCount("limits.max_tracked_principals", l.MaxTrackedPrincipals, maxTrackedLimit)
}
