package config

import (
	"math"
	"net/url"
	"time"
)

// Tracing configures OpenTelemetry traces, exported over OTLP/HTTP. It is
// off unless OTLPEndpoint is set.
type Tracing struct {
	// OTLPEndpoint is the collector's OTLP/HTTP base URL
	// (https://collector:4318); spans go to <endpoint>/v1/traces unless the
	// URL already has a path. Empty turns tracing off.
	OTLPEndpoint string `yaml:"otlp_endpoint"`
	// SampleRatio is the share of new traces recorded, from 0 to 1; nil
	// means 1. A client's traceparent continues its trace but never forces
	// sampling: the ratio decides.
	SampleRatio *float64 `yaml:"sample_ratio"`
	// Insecure allows plaintext http:// to a loopback collector (an agent
	// on the same host). Any other collector must be https.
	Insecure bool `yaml:"insecure"`
	// ServiceName is the service.name resource attribute; default "mcpgate".
	ServiceName string `yaml:"service_name"`
	// Timeout bounds one export; default 10s.
	Timeout time.Duration `yaml:"timeout"`
	// Headers are added to every export (e.g. a collector's API key); values
	// must be secret references.
	Headers map[string]Value `yaml:"headers"`
}

// Tracing defaults.
const (
	DefaultTracingServiceName = "mcpgate"
	DefaultTracingTimeout     = 10 * time.Second
	maxTracingTimeout         = time.Minute
)

// Enabled reports whether spans are exported.
func (t Tracing) Enabled() bool { return t.OTLPEndpoint != "" }

// Ratio is the sample ratio in force.
func (t Tracing) Ratio() float64 {
	if t.SampleRatio == nil {
		return 1
	}
	return *t.SampleRatio
}

func (t *Tracing) applyDefaults() {
	setDefault(&t.ServiceName, DefaultTracingServiceName)
	setDefault(&t.Timeout, DefaultTracingTimeout)
}

func (t *Tracing) resolvePaths(dir string) { resolveSecretRefs(dir, t.Headers) }

func (c *Config) validateTracing(add addFunc) {
	t := c.Tracing
	if r := t.Ratio(); math.IsNaN(r) || r < 0 || r > 1 {
		add("tracing.sample_ratio", "must be from 0 to 1")
	}
	if t.Timeout <= 0 || t.Timeout > maxTracingTimeout {
		add("tracing.timeout", "must be positive and at most %v", maxTracingTimeout)
	}
	if !idPattern.MatchString(t.ServiceName) {
		add("tracing.service_name", "%q must be 1-64 characters of letters, digits and _.@-", t.ServiceName)
	}
	validateSecretHeaders("tracing.headers", t.Headers, add)
	if !t.Enabled() {
		if t.Insecure || len(t.Headers) > 0 {
			add("tracing.otlp_endpoint", "required when other tracing keys are set (tracing is off without it)")
		}
		return
	}
	if err := checkPushURL(t.OTLPEndpoint, t.Insecure, "tracing.insecure"); err != nil {
		add("tracing.otlp_endpoint", "%v", err)
	} else if u, _ := url.Parse(t.OTLPEndpoint); u.RawQuery != "" {
		add("tracing.otlp_endpoint", "must not have a query")
	}
}
