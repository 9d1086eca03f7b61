// Package alert fires threshold alerts: a rule counts one kind of event
// (authentication failures, quarantines, sandbox kills, audit failures, rate
// limiting) in a sliding window and fires when the count reaches its
// threshold, at most once per window so that an attack does not become an
// alert storm. A firing is logged at WARN, counted, and optionally POSTed to
// a webhook by one goroutine the Alerter owns.
package alert

import (
	"log/slog"
	"sync"
	"time"
)

// Rule is one threshold rule.
type Rule struct {
	Name      string
	On        string // the event counted
	Threshold int
	Window    time.Duration
}

// Firing is one rule crossing its threshold; it is also the webhook's JSON
// body.
type Firing struct {
	Rule      string    `json:"rule"`
	On        string    `json:"on"`
	Count     int       `json:"count"` // events in the window when it fired
	Threshold int       `json:"threshold"`
	Window    string    `json:"window"` // a Go duration: "1m0s"
	Time      time.Time `json:"time"`
	Version   string    `json:"version"` // mcpgate's version
}

// Metrics counts what the alerter does; the gateway's telemetry implements it.
type Metrics interface {
	AlertFired(rule string)
	// AlertDelivery counts one webhook outcome: "ok", "failed", "dropped".
	AlertDelivery(result string)
}

// Options configure an Alerter.
type Options struct {
	Rules []Rule
	// Webhook, if non-nil, receives every firing.
	Webhook *Webhook
	Logger  *slog.Logger
	Metrics Metrics
	// Now is the clock; nil means time.Now. Tests inject a fake one.
	Now     func() time.Time
	Version string
}

// Alerter counts events against its rules. Observe is safe for concurrent
// use; Close stops the webhook's goroutine.
type Alerter struct {
	logger  *slog.Logger
	metrics Metrics
	now     func() time.Time
	version string
	byEvent map[string][]*window // read-only after New
	hook    *sender              // nil: no webhook
}

// window is one rule's sliding window: the times of the last Threshold
// events, in a ring. The rule fires when the oldest of them is within the
// window, and then stays quiet for one window.
type window struct {
	rule Rule

	mu    sync.Mutex
	times []time.Time // ring of up to rule.Threshold event times
	next  int         // where the next event time goes
	full  bool
	quiet time.Time // no firing before this
}

// New builds an Alerter and starts its webhook sender, if any.
func New(o Options) *Alerter {
	a := &Alerter{logger: o.Logger, metrics: o.Metrics, now: o.Now, version: o.Version, byEvent: map[string][]*window{}}
	if a.logger == nil {
		a.logger = slog.New(slog.DiscardHandler)
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.metrics == nil {
		a.metrics = noMetrics{}
	}
	for _, r := range o.Rules {
		a.byEvent[r.On] = append(a.byEvent[r.On], &window{rule: r, times: make([]time.Time, r.Threshold)})
	}
	if o.Webhook != nil {
		a.hook = startSender(*o.Webhook, a.logger, a.metrics)
	}
	return a
}

// Observe records one event; a rule it brings to its threshold fires.
func (a *Alerter) Observe(event string) {
	if a == nil {
		return
	}
	for _, w := range a.byEvent[event] {
		if f, ok := w.add(a.now()); ok {
			f.Version = a.version
			a.fire(f)
		}
	}
}

// add records an event at now and reports a firing, if this event makes one.
func (w *window) add(now time.Time) (Firing, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.times[w.next] = now
	w.next = (w.next + 1) % len(w.times)
	if w.next == 0 {
		w.full = true
	}
	if !w.full || now.Before(w.quiet) {
		return Firing{}, false
	}
	oldest := w.times[w.next] // the ring is full: the slot written next holds the oldest
	if now.Sub(oldest) >= w.rule.Window {
		return Firing{}, false
	}
	// Fired: the next firing needs Threshold new events, and one window
	// must pass, however fast they come.
	w.full, w.next = false, 0
	w.quiet = now.Add(w.rule.Window)
	return Firing{Rule: w.rule.Name, On: w.rule.On, Count: w.rule.Threshold, Threshold: w.rule.Threshold,
		Window: w.rule.Window.String(), Time: now.UTC()}, true
}

func (a *Alerter) fire(f Firing) {
	a.logger.Warn("alert fired", "rule", f.Rule, "on", f.On, "count", f.Count, "threshold", f.Threshold, "window", f.Window)
	a.metrics.AlertFired(f.Rule)
	if a.hook != nil {
		a.hook.enqueue(f)
	}
}

// Close stops the webhook sender: a delivery in flight is given up to its
// timeout, firings still queued are dropped (and counted).
func (a *Alerter) Close() {
	if a == nil || a.hook == nil {
		return
	}
	a.hook.close()
}

type noMetrics struct{}

func (noMetrics) AlertFired(string)    {}
func (noMetrics) AlertDelivery(string) {}
