package telemetry

import (
	"strings"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/limits"
)

// TestLimiterAndConnectionGauges: the gauges read the real limiter and the
// connection count at each scrape; a limiter over its key bound shows its
// evictions.
func TestLimiterAndConnectionGauges(t *testing.T) {
	m := New("test")
	now := time.Unix(0, 0)
	b := limits.NewBuckets(1, 1, 2, func() time.Time { return now })
	if err := m.TrackLimiter("principal", b); err != nil {
		t.Fatal(err)
	}
	conns := 0
	if err := m.TrackConnections(func() int { return conns }); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"a", "b", "c", "d"} {
		b.Allow(k) // each empties its bucket, so none can be dropped as refilled
	}
	conns = 3
	text := scrape(t, m)
	for _, want := range []string{
		`mcpgate_limiter_tracked_keys{limiter="principal"} 2`,
		`mcpgate_limiter_evictions_total{limiter="principal"} 2`,
		`mcpgate_connections_open 3`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
	if err := m.TrackLimiter("principal", b); err == nil {
		t.Error("a second limiter with the same name was registered")
	}
}
