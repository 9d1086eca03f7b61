package config

import (
	"fmt"
	"maps"
	"net/http"
	"net/textproto"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/mcpgate/mcpgate/internal/secret"
)

// Alerts configures threshold alerts: a rule fires when its event happens
// Threshold times within Window, at most once per Window. A firing is logged
// at WARN, counted (mcpgate_alerts_total{rule}) and, with Webhook set,
// POSTed as JSON.
type Alerts struct {
	Rules []AlertRule `yaml:"rules"`
	// Webhook receives every firing; nil means log and count only.
	Webhook *AlertWebhook `yaml:"webhook"`
}

// AlertRule is one threshold rule.
type AlertRule struct {
	// Name identifies the rule in logs, the metric label and the webhook body.
	Name string `yaml:"name"`
	// On is the event counted: one of AlertEvents.
	On string `yaml:"on"`
	// Threshold is how many events within Window fire the rule.
	Threshold int `yaml:"threshold"`
	// Window is the sliding window the events are counted in; default 1m.
	Window time.Duration `yaml:"window"`
}

// AlertWebhook is where firings are POSTed.
type AlertWebhook struct {
	// URL must be https, or http on a loopback host with
	// InsecureAllowHTTPLoopback.
	URL string `yaml:"url"`
	// Timeout bounds one delivery (connect to last byte); default 5s.
	Timeout time.Duration `yaml:"timeout"`
	// Headers are added to every POST (e.g. Authorization). Values must be
	// secret references: a webhook credential never sits in the config.
	Headers map[string]Value `yaml:"headers"`
	// QueueSize bounds the firings waiting for delivery; past it a firing's
	// POST is dropped (and counted). Default 64.
	QueueSize int `yaml:"queue_size"`
	// InsecureAllowHTTPLoopback allows an http:// URL on a loopback host,
	// for tests and local development only.
	InsecureAllowHTTPLoopback bool `yaml:"insecure_allow_http_loopback"`
}

// Alert events (AlertRule.On).
const (
	AlertAuthFailures  = "auth_failures"  // 401 answers
	AlertQuarantines   = "quarantines"    // upstream definitions quarantined (tool lockfile, poisoned descriptions)
	AlertSandboxKills  = "sandbox_kills"  // sandboxed servers killed by a resource limit
	AlertAuditFailures = "audit_failures" // audit records that could not be written
	AlertRateLimited   = "rate_limited"   // 429 answers: rate or concurrency limits
)

// AlertEvents lists the values AlertRule.On may take.
var AlertEvents = []string{AlertAuthFailures, AlertQuarantines, AlertSandboxKills, AlertAuditFailures, AlertRateLimited}

// Alert defaults and bounds.
const (
	DefaultAlertWindow         = time.Minute
	DefaultAlertWebhookTimeout = 5 * time.Second
	DefaultAlertQueueSize      = 64
	// MaxAlertThreshold bounds the memory of a rule's sliding window (one
	// timestamp per event counted).
	MaxAlertThreshold = 10_000
	maxAlertRules     = 64
	minAlertWindow    = time.Second
	maxAlertWindow    = 24 * time.Hour
	maxAlertTimeout   = time.Minute
	maxAlertQueueSize = 10_000
)

func (a *Alerts) applyDefaults() {
	for i := range a.Rules {
		setDefault(&a.Rules[i].Window, DefaultAlertWindow)
	}
	if w := a.Webhook; w != nil {
		setDefault(&w.Timeout, DefaultAlertWebhookTimeout)
		setDefault(&w.QueueSize, DefaultAlertQueueSize)
	}
}

func (a *Alerts) resolvePaths(dir string) {
	if a.Webhook != nil {
		resolveSecretRefs(dir, a.Webhook.Headers)
	}
}

// resolveSecretRefs makes the relative file: references in headers relative
// to dir, the config file's directory.
func resolveSecretRefs(dir string, headers map[string]Value) {
	for name, v := range headers {
		if kind, target, err := secret.ParseRef(v.Secret); err == nil && kind == secret.KindFile {
			absIn(dir, &target)
			v.Secret = secret.KindFile + ":" + target
			headers[name] = v
		}
	}
}

func (c *Config) validateAlerts(add addFunc) {
	a := c.Alerts
	if len(a.Rules) > maxAlertRules {
		add("alerts.rules", "at most %d rules", maxAlertRules)
	}
	names := map[string]bool{}
	for i, r := range a.Rules {
		key := fmt.Sprintf("alerts.rules[%d]", i)
		switch {
		case !idPattern.MatchString(r.Name):
			add(key+".name", "%q must be 1-64 characters of letters, digits and _.@-", r.Name)
		case names[r.Name]:
			add(key+".name", "duplicate rule name %q", r.Name)
		}
		names[r.Name] = true
		if !slices.Contains(AlertEvents, r.On) {
			add(key+".on", "%q is not an event: use one of %s", r.On, strings.Join(AlertEvents, ", "))
		}
		if r.Threshold < 1 || r.Threshold > MaxAlertThreshold {
			add(key+".threshold", "must be from 1 to %d", MaxAlertThreshold)
		}
		if r.Window < minAlertWindow || r.Window > maxAlertWindow {
			add(key+".window", "must be from %v to %v", minAlertWindow, maxAlertWindow)
		}
	}
	w := a.Webhook
	if w == nil {
		return
	}
	if len(a.Rules) == 0 {
		add("alerts.webhook", "is set but alerts.rules is empty: nothing would ever be sent")
	}
	if err := checkPushURL(w.URL, w.InsecureAllowHTTPLoopback, "alerts.webhook.insecure_allow_http_loopback"); err != nil {
		add("alerts.webhook.url", "%v", err)
	}
	if w.Timeout <= 0 || w.Timeout > maxAlertTimeout {
		add("alerts.webhook.timeout", "must be positive and at most %v", maxAlertTimeout)
	}
	if w.QueueSize < 1 || w.QueueSize > maxAlertQueueSize {
		add("alerts.webhook.queue_size", "must be from 1 to %d", maxAlertQueueSize)
	}
	validateSecretHeaders("alerts.webhook.headers", w.Headers, add)
}

// checkPushURL accepts an absolute https URL without credentials or
// fragment, or http on a loopback host when allowed by the key flag names.
// mcpgate pushes data (alerts, spans) to it.
func checkPushURL(s string, httpLoopbackOK bool, flag string) error {
	if s == "" {
		return fmt.Errorf("required")
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.Fragment != "" || u.Opaque != "" {
		return fmt.Errorf("%q is not an absolute URL without fragment", s)
	}
	if u.User != nil {
		return fmt.Errorf("%q carries credentials; put them in headers as a secret reference", u.Redacted())
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		switch {
		case !IsLoopbackHost(u.Hostname()):
			return fmt.Errorf("%q must be https (plain http is allowed only to a loopback host, with %s: true)", s, flag)
		case !httpLoopbackOK:
			return fmt.Errorf("%q must be https, or set %s: true for a loopback receiver", s, flag)
		}
		return nil
	default:
		return fmt.Errorf("%q must be https", s)
	}
}

// forbiddenPushHeaders are set by mcpgate or by HTTP itself.
var forbiddenPushHeaders = map[string]bool{
	"Host": true, "Content-Type": true, "Content-Length": true, "Content-Encoding": true,
	"Transfer-Encoding": true, "Connection": true, "Traceparent": true, "Tracestate": true,
}

// validateSecretHeaders checks extra request headers: valid names that
// mcpgate does not set itself, each value a secret reference.
func validateSecretHeaders(key string, headers map[string]Value, add addFunc) {
	for _, name := range slices.Sorted(maps.Keys(headers)) {
		v := headers[name]
		hk := key + "." + name
		canon := textproto.CanonicalMIMEHeaderKey(name)
		switch {
		case !validHeaderName(name):
			add(hk, "%q is not an HTTP header name", name)
		case forbiddenPushHeaders[canon]:
			add(hk, "%s is set by mcpgate", canon)
		case !v.IsSecret():
			add(hk, "must be a secret reference ({secret: env:NAME} or {secret: file:PATH}), never a literal credential")
		default:
			if _, _, err := secret.ParseRef(v.Secret); err != nil {
				add(hk, "%v", err)
			}
		}
	}
}

func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		// RFC 9110 token characters.
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return http.CanonicalHeaderKey(s) != ""
}
