package telemetry

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Limiter is a keyed limiter whose size the metrics report: the keys it
// tracks now (bounded by limits.max_tracked_principals) and how many it has
// evicted to stay within that bound.
type Limiter interface {
	Len() int
	Evicted() uint64
}

// TrackLimiter exports mcpgate_limiter_tracked_keys{limiter} and
// mcpgate_limiter_evictions_total{limiter}, read from l at every scrape.
// A steadily rising eviction count means more principals are active than
// the limiter tracks: each one evicted starts again with a full bucket.
func (m *Metrics) TrackLimiter(name string, l Limiter) error {
	if m == nil {
		return nil
	}
	labels := prometheus.Labels{"limiter": name}
	tracked := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "mcpgate_limiter_tracked_keys",
		Help:        "Keys (principals, or principal and tool) a rate limiter holds state for, by limiter.",
		ConstLabels: labels,
	}, func() float64 { return float64(l.Len()) })
	evicted := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name:        "mcpgate_limiter_evictions_total",
		Help:        "Keys a rate limiter dropped to stay within limits.max_tracked_principals, by limiter.",
		ConstLabels: labels,
	}, func() float64 { return float64(l.Evicted()) })
	for _, c := range []prometheus.Collector{tracked, evicted} {
		if err := m.reg.Register(c); err != nil {
			return fmt.Errorf("register limiter metrics: %w", err)
		}
	}
	return nil
}

// TrackConnections exports mcpgate_connections_open, the MCP listener's
// open connections (capped by listen.max_connections), read from count at
// every scrape.
func (m *Metrics) TrackConnections(count func() int) error {
	if m == nil {
		return nil
	}
	g := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "mcpgate_connections_open",
		Help: "Connections open on the MCP listener, TLS handshakes included; listen.max_connections caps them.",
	}, func() float64 { return float64(count()) })
	if err := m.reg.Register(g); err != nil {
		return fmt.Errorf("register connections gauge: %w", err)
	}
	return nil
}

// TrackUpstreams exports mcpgate_upstream_up{upstream}: 1 while the
// upstream's connection is up, 0 while it is starting, down (waiting to
// restart) or not started yet (start: on_demand). up is asked at every
// scrape; names are the configured upstreams, so the series are bounded.
func (m *Metrics) TrackUpstreams(names []string, up func() map[string]bool) error {
	if m == nil {
		return nil
	}
	for _, name := range names {
		g := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "mcpgate_upstream_up",
			Help:        "1 while an upstream's connection is up, else 0 (starting, down and waiting to restart, or not started yet).",
			ConstLabels: prometheus.Labels{"upstream": name},
		}, func() float64 {
			if up()[name] {
				return 1
			}
			return 0
		})
		if err := m.reg.Register(g); err != nil {
			return fmt.Errorf("register upstream gauge: %w", err)
		}
	}
	return nil
}
