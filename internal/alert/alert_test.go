package alert

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeMetrics records what the alerter counts.
type fakeMetrics struct {
	mu         sync.Mutex
	fired      map[string]int
	deliveries map[string]int
}

func newFakeMetrics() *fakeMetrics {
	return &fakeMetrics{fired: map[string]int{}, deliveries: map[string]int{}}
}

func (m *fakeMetrics) AlertFired(rule string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fired[rule]++
}

func (m *fakeMetrics) AlertDelivery(result string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.deliveries[result]++
}

func (m *fakeMetrics) delivered(result string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.deliveries[result]
}

func TestFiring(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	rule := Rule{Name: "bad-keys", On: "auth_failures", Threshold: 3, Window: time.Minute}
	tests := []struct {
		name string
		// events are offsets from t0 of each auth_failures event.
		events []time.Duration
		// fires lists the indexes of the events that fire the rule.
		fires []int
	}{
		{"below threshold", []time.Duration{0, time.Second}, nil},
		{"threshold reached fires once", []time.Duration{0, time.Second, 2 * time.Second}, []int{2}},
		{"more in the same window do not fire again",
			[]time.Duration{0, 1 * time.Second, 2 * time.Second, 3 * time.Second, 4 * time.Second, 5 * time.Second, 6 * time.Second}, []int{2}},
		{"spread wider than the window never fires",
			[]time.Duration{0, 40 * time.Second, 80 * time.Second, 120 * time.Second, 160 * time.Second}, nil},
		{"window edge is exclusive", []time.Duration{0, 30 * time.Second, time.Minute}, nil},
		{"sliding, not fixed: a burst across a minute boundary fires",
			[]time.Duration{50 * time.Second, 59 * time.Second, 61 * time.Second}, []int{2}},
		{"a sustained storm fires once per window",
			[]time.Duration{0, 1 * time.Second, 2 * time.Second, 30 * time.Second, 59 * time.Second, 62 * time.Second, 63 * time.Second, 90 * time.Second, 121 * time.Second, 122 * time.Second},
			[]int{2, 5, 9}}, // 121 s is still within the quiet window that began at 62 s
		{"after the quiet window, three fresh events are needed",
			[]time.Duration{0, 1 * time.Second, 2 * time.Second, 70 * time.Second, 71 * time.Second, 72 * time.Second}, []int{2, 5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var now time.Time
			m := newFakeMetrics()
			a := New(Options{Rules: []Rule{rule, {Name: "other", On: "sandbox_kills", Threshold: 1, Window: time.Minute}},
				Metrics: m, Now: func() time.Time { return now }})
			defer a.Close()
			var got []int
			for i, off := range tt.events {
				now = t0.Add(off)
				before := m.fired["bad-keys"]
				a.Observe("auth_failures")
				a.Observe("rate_limited") // no rule: ignored
				if m.fired["bad-keys"] > before {
					got = append(got, i)
				}
			}
			if !equal(got, tt.fires) {
				t.Errorf("fired at events %v, want %v", got, tt.fires)
			}
			if m.fired["other"] != 0 {
				t.Errorf("rule on another event fired %d times", m.fired["other"])
			}
		})
	}
}

func equal(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// receiver is a real HTTP server that records the webhook's POSTs.
type receiver struct {
	mu     sync.Mutex
	bodies [][]byte
	heads  []http.Header
	got    chan struct{}
}

func newReceiver(t *testing.T, status int, tls bool) (*receiver, *httptest.Server) {
	r := &receiver{got: make(chan struct{}, 100)}
	h := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.bodies = append(r.bodies, b)
		r.heads = append(r.heads, req.Header.Clone())
		r.mu.Unlock()
		if status == http.StatusFound {
			w.Header().Set("Location", "/elsewhere")
		}
		w.WriteHeader(status)
		r.got <- struct{}{}
	})
	var srv *httptest.Server
	if tls {
		srv = httptest.NewTLSServer(h)
	} else {
		srv = httptest.NewServer(h)
	}
	t.Cleanup(srv.Close)
	return r, srv
}

func (r *receiver) wait(t *testing.T) {
	t.Helper()
	select {
	case <-r.got:
	case <-time.After(5 * time.Second):
		t.Fatal("the webhook receiver got nothing")
	}
}

func TestWebhookDelivers(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		name := map[bool]string{false: "loopback http", true: "https"}[useTLS]
		t.Run(name, func(t *testing.T) {
			rcv, srv := newReceiver(t, http.StatusNoContent, useTLS)
			m := newFakeMetrics()
			hook := &Webhook{URL: srv.URL + "/hook", Timeout: 2 * time.Second, QueueSize: 4,
				Header: http.Header{"Authorization": {"Bearer hook-secret"}}}
			if useTLS {
				hook.RootCAs = srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
			}
			now := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
			a := New(Options{Rules: []Rule{{Name: "audit", On: "audit_failures", Threshold: 1, Window: time.Minute}},
				Webhook: hook, Metrics: m, Now: func() time.Time { return now }, Version: "v9.9.9"})
			defer a.Close()
			a.Observe("audit_failures")
			rcv.wait(t)
			rcv.mu.Lock()
			defer rcv.mu.Unlock()
			var f map[string]any
			if err := json.Unmarshal(rcv.bodies[0], &f); err != nil {
				t.Fatalf("body %q: %v", rcv.bodies[0], err)
			}
			want := map[string]any{"rule": "audit", "on": "audit_failures", "count": 1.0, "threshold": 1.0,
				"window": "1m0s", "time": "2026-05-06T07:08:09Z", "version": "v9.9.9"}
			for k, v := range want {
				if f[k] != v {
					t.Errorf("body[%q] = %v, want %v", k, f[k], v)
				}
			}
			if len(f) != len(want) {
				t.Errorf("body has keys %v, want exactly %v", f, want)
			}
			h := rcv.heads[0]
			if h.Get("Authorization") != "Bearer hook-secret" || h.Get("Content-Type") != "application/json" {
				t.Errorf("headers %v", h)
			}
		})
	}
}

func TestWebhookRefusals(t *testing.T) {
	t.Run("redirect not followed", func(t *testing.T) {
		rcv, srv := newReceiver(t, http.StatusFound, false)
		m := newFakeMetrics()
		a := New(Options{Rules: []Rule{{Name: "r", On: "quarantines", Threshold: 1, Window: time.Minute}},
			Webhook: &Webhook{URL: srv.URL, Timeout: 2 * time.Second, QueueSize: 1}, Metrics: m})
		a.Observe("quarantines")
		rcv.wait(t)
		a.Close() // waits for the delivery in flight
		if n := len(rcv.bodies); n != 1 {
			t.Errorf("receiver got %d requests, want 1 (the redirect must not be followed)", n)
		}
		if m.delivered(DeliveryFailed) != 1 {
			t.Errorf("deliveries %v, want one failed", m.deliveries)
		}
	})
	t.Run("plain http to a non-loopback address is not dialled", func(t *testing.T) {
		m := newFakeMetrics()
		// 192.0.2.1 is TEST-NET-1; the dial is refused before any packet.
		a := New(Options{Rules: []Rule{{Name: "r", On: "quarantines", Threshold: 1, Window: time.Minute}},
			Webhook: &Webhook{URL: "http://192.0.2.1:9/hook", Timeout: 2 * time.Second, QueueSize: 1}, Metrics: m})
		a.Observe("quarantines")
		deadline := time.Now().Add(5 * time.Second)
		for m.delivered(DeliveryFailed) == 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		a.Close()
		if m.delivered(DeliveryFailed) != 1 {
			t.Errorf("deliveries %v, want one failed", m.deliveries)
		}
	})
	t.Run("full queue drops", func(t *testing.T) {
		block := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-block:
			case <-r.Context().Done():
			}
		}))
		defer srv.Close()
		defer close(block)
		m := newFakeMetrics()
		var now time.Time
		a := New(Options{Rules: []Rule{{Name: "r", On: "sandbox_kills", Threshold: 1, Window: time.Second}},
			Webhook: &Webhook{URL: srv.URL, Timeout: 5 * time.Second, QueueSize: 2}, Metrics: m,
			Now: func() time.Time { return now }})
		// Ten firings (one per window); one is in flight, two are queued.
		for i := range 10 {
			now = time.Unix(int64(10*i), 0)
			a.Observe("sandbox_kills")
			if i == 0 {
				time.Sleep(100 * time.Millisecond) // let the sender take the first
			}
		}
		if got := m.delivered(DeliveryDropped); got != 7 {
			t.Errorf("dropped %d, want 7", got)
		}
		closed := make(chan struct{})
		go func() { a.Close(); close(closed) }()
		time.Sleep(50 * time.Millisecond) // Close has asked the sender to stop
		block <- struct{}{}               // the delivery in flight finishes
		<-closed
		if got := m.delivered(DeliveryDropped); got != 9 {
			t.Errorf("after Close dropped %d, want 9 (the two queued ones too)", got)
		}
		if got := m.delivered(DeliveryOK); got != 1 {
			t.Errorf("delivered %d, want 1 (the one in flight at Close)", got)
		}
	})
}
