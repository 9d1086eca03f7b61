package config

import (
	"math"
	"strings"
	"testing"
)

// TestAlertsAndTracingParse: the documented shape decodes, defaults apply,
// and a relative file: secret reference is made relative to the config.
func TestAlertsAndTracingParse(t *testing.T) {
	yaml := `
auth: {insecure_disable_auth: true}
upstreams: {demo: {builtin: demo}}
alerts:
  rules:
    - {name: bad-keys, on: auth_failures, threshold: 20}
    - {name: oom, on: sandbox_kills, threshold: 3, window: 10m}
  webhook:
    url: https://alerts.example.com/hook
    headers: {Authorization: {secret: "file:hook.token"}}
tracing:
  otlp_endpoint: https://collector.example.com:4318
  sample_ratio: 0
`
	c, err := Parse("/etc/mcpgate/mcpgate.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	a := c.Alerts
	if len(a.Rules) != 2 || a.Rules[0].Window != DefaultAlertWindow || a.Rules[1].Window.String() != "10m0s" {
		t.Errorf("rules %+v", a.Rules)
	}
	if a.Webhook.Timeout != DefaultAlertWebhookTimeout || a.Webhook.QueueSize != DefaultAlertQueueSize {
		t.Errorf("webhook defaults %+v", a.Webhook)
	}
	if got := a.Webhook.Headers["Authorization"].Secret; got != "file:/etc/mcpgate/hook.token" {
		t.Errorf("header secret %q, want it relative to the config's directory", got)
	}
	if !c.Tracing.Enabled() || c.Tracing.Ratio() != 0 || c.Tracing.ServiceName != "mcpgate" {
		t.Errorf("tracing %+v (an explicit sample_ratio 0 must stay 0)", c.Tracing)
	}
	if _, err := Parse("x.yaml", []byte(strings.Replace(yaml, "threshold: 20}", "threshold: 20, windw: 1m}", 1))); err == nil ||
		!strings.Contains(err.Error(), "alerts.rules[0].windw: unknown key") {
		t.Errorf("misspelt key: %v", err)
	}
}

func TestAlertsValidation(t *testing.T) {
	rule := AlertRule{Name: "r", On: AlertAuthFailures, Threshold: 5}
	hook := func(edit func(*AlertWebhook)) func(*Alerts) {
		return func(a *Alerts) {
			a.Rules = []AlertRule{rule}
			a.Webhook = &AlertWebhook{URL: "https://hooks.example.com/x"}
			edit(a.Webhook)
		}
	}
	for _, tc := range []struct {
		name string
		edit func(*Alerts)
		want string // "" means valid
	}{
		{"none", func(*Alerts) {}, ""},
		{"one rule", func(a *Alerts) { a.Rules = []AlertRule{rule} }, ""},
		{"bad name", func(a *Alerts) { a.Rules = []AlertRule{{Name: "a b", On: AlertQuarantines, Threshold: 1}} }, "alerts.rules[0].name:"},
		{"duplicate name", func(a *Alerts) { a.Rules = []AlertRule{rule, rule} }, "alerts.rules[1].name: duplicate"},
		{"unknown event", func(a *Alerts) { a.Rules = []AlertRule{{Name: "r", On: "logins", Threshold: 1}} }, "alerts.rules[0].on: \"logins\" is not an event"},
		{"zero threshold", func(a *Alerts) { a.Rules = []AlertRule{{Name: "r", On: AlertRateLimited}} }, "alerts.rules[0].threshold: must be from 1"},
		{"huge threshold", func(a *Alerts) { a.Rules = []AlertRule{{Name: "r", On: AlertRateLimited, Threshold: 1e6}} }, "alerts.rules[0].threshold"},
		{"tiny window", func(a *Alerts) {
			a.Rules = []AlertRule{{Name: "r", On: AlertAuditFailures, Threshold: 1, Window: 1}}
		}, "alerts.rules[0].window: must be from 1s"},
		{"webhook", hook(func(*AlertWebhook) {}), ""},
		{"webhook without rules", func(a *Alerts) { a.Webhook = &AlertWebhook{URL: "https://h.example.com"} }, "alerts.webhook: is set but alerts.rules is empty"},
		{"http webhook", hook(func(w *AlertWebhook) { w.URL = "http://hooks.example.com/x" }), "alerts.webhook.url: \"http://hooks.example.com/x\" must be https (plain http is allowed only to a loopback host"},
		{"http loopback without flag", hook(func(w *AlertWebhook) { w.URL = "http://127.0.0.1:9/x" }), "set alerts.webhook.insecure_allow_http_loopback: true"},
		{"http loopback with flag", hook(func(w *AlertWebhook) { w.URL = "http://localhost:9/x"; w.InsecureAllowHTTPLoopback = true }), ""},
		{"flag does not open non-loopback", hook(func(w *AlertWebhook) { w.URL = "http://10.0.0.1/x"; w.InsecureAllowHTTPLoopback = true }), "alerts.webhook.url"},
		{"credentials in URL", hook(func(w *AlertWebhook) { w.URL = "https://u:p@h.example.com/x" }), "carries credentials"},
		{"no URL", hook(func(w *AlertWebhook) { w.URL = "" }), "alerts.webhook.url: required"},
		{"literal header", hook(func(w *AlertWebhook) { w.Headers = map[string]Value{"Authorization": {Literal: "Bearer x"}} }), "alerts.webhook.headers.Authorization: must be a secret reference"},
		{"secret header", hook(func(w *AlertWebhook) { w.Headers = map[string]Value{"X-Token": {Secret: "env:HOOK_TOKEN"}} }), ""},
		{"bad secret ref", hook(func(w *AlertWebhook) { w.Headers = map[string]Value{"X-Token": {Secret: "vault:x"}} }), "alerts.webhook.headers.X-Token: secret reference"},
		{"reserved header", hook(func(w *AlertWebhook) { w.Headers = map[string]Value{"content-type": {Secret: "env:X"}} }), "Content-Type is set by mcpgate"},
		{"bad header name", hook(func(w *AlertWebhook) { w.Headers = map[string]Value{"X Token": {Secret: "env:X"}} }), "is not an HTTP header name"},
		{"timeout", hook(func(w *AlertWebhook) { w.Timeout = -1 }), "alerts.webhook.timeout: must be positive"},
		{"queue", hook(func(w *AlertWebhook) { w.QueueSize = 1e6 }), "alerts.webhook.queue_size: must be from 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			c.Auth.InsecureDisableAuth = true
			tc.edit(&c.Alerts)
			c.ApplyDefaults()
			got := c.Validate().Error()
			if tc.want == "" && got != "" || tc.want != "" && !strings.Contains(got, tc.want) {
				t.Fatalf("problems %q, want %q", got, tc.want)
			}
		})
	}
}

func TestTracingValidation(t *testing.T) {
	ratio := func(r float64) *float64 { return &r }
	for _, tc := range []struct {
		name string
		edit func(*Tracing)
		want string // "" means valid
	}{
		{"off", func(*Tracing) {}, ""},
		{"https", func(tr *Tracing) { tr.OTLPEndpoint = "https://collector.example.com:4318" }, ""},
		{"plain http refused", func(tr *Tracing) { tr.OTLPEndpoint = "http://collector.example.com:4318" }, "tracing.otlp_endpoint: \"http://collector.example.com:4318\" must be https"},
		{"loopback needs insecure", func(tr *Tracing) { tr.OTLPEndpoint = "http://127.0.0.1:4318" }, "set tracing.insecure: true"},
		{"loopback insecure", func(tr *Tracing) { tr.OTLPEndpoint = "http://127.0.0.1:4318"; tr.Insecure = true }, ""},
		{"insecure does not open non-loopback", func(tr *Tracing) { tr.OTLPEndpoint = "http://10.1.1.1:4318"; tr.Insecure = true }, "tracing.otlp_endpoint"},
		{"insecure without endpoint", func(tr *Tracing) { tr.Insecure = true }, "tracing.otlp_endpoint: required when"},
		{"ratio above 1", func(tr *Tracing) { tr.SampleRatio = ratio(1.5) }, "tracing.sample_ratio: must be from 0 to 1"},
		{"ratio NaN", func(tr *Tracing) { tr.SampleRatio = ratio(math.NaN()) }, "tracing.sample_ratio"},
		{"ratio 0", func(tr *Tracing) { tr.OTLPEndpoint = "https://c.example.com"; tr.SampleRatio = ratio(0) }, ""},
		{"query", func(tr *Tracing) { tr.OTLPEndpoint = "https://c.example.com/v1/traces?x=1" }, "must not have a query"},
		{"service name", func(tr *Tracing) { tr.ServiceName = "my service" }, "tracing.service_name"},
		{"literal header", func(tr *Tracing) {
			tr.OTLPEndpoint = "https://c.example.com"
			tr.Headers = map[string]Value{"Api-Key": {Literal: "k"}}
		}, "tracing.headers.Api-Key: must be a secret reference"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			c.Auth.InsecureDisableAuth = true
			tc.edit(&c.Tracing)
			c.ApplyDefaults()
			got := c.Validate().Error()
			if tc.want == "" && got != "" || tc.want != "" && !strings.Contains(got, tc.want) {
				t.Fatalf("problems %q, want %q", got, tc.want)
			}
		})
	}
}
