package gateway

import (
	"crypto/rand"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/mcpgate/mcpgate/internal/authn"
	"github.com/mcpgate/mcpgate/internal/config"
	"github.com/mcpgate/mcpgate/internal/telemetry"
)

// servedWithAdmin runs a whole gateway, auditing, with its admin listener,
// until the test ends.
func servedWithAdmin(t *testing.T) (g *Gateway, mcpURL, adminURL, key string) {
	t.Helper()
	keyPath, logPath, _ := auditFiles(t)
	key, digest := authn.NewKey()
	cfg := config.Default()
	cfg.Listen.Address, cfg.Admin.Address = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Auth.APIKeys = []config.APIKey{{ID: "alice", SHA256: digest}}
	cfg.Audit.Path, cfg.Audit.SigningKey = logPath, keyPath
	if ps := cfg.Validate(); len(ps) > 0 {
		t.Fatal(ps)
	}
	var err error
	g, err = New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ln := serveOn(t, g)
	return g, "http://" + ln.Addr().String() + EndpointPath, "http://" + g.AdminAddr(), key
}

func send(t *testing.T, method, url, key, body string, edit func(*http.Request)) (int, string) {
	t.Helper()
	resp, b := request(t, method, url, key, body, edit)
	return resp.StatusCode, string(b)
}

// TestAdminMetricsOverHTTP: an allowed call, a 401, a 403 and a bad-JSON
// request are counted exactly, as scraped from the admin listener.
func TestAdminMetricsOverHTTP(t *testing.T) {
	_, mcpURL, adminURL, key := servedWithAdmin(t)

	if code, b := send(t, "POST", mcpURL, key, modernBody(1, "tools/call", `"name":"echo","arguments":{"message":"hi"}`), modernHeaders("tools/call", "echo")); code != 200 {
		t.Fatalf("allowed call: %d %s", code, b)
	}
	if code, _ := send(t, "POST", mcpURL, "", modernBody(2, "tools/list", ""), modernHeaders("tools/list", "")); code != 401 {
		t.Fatalf("no key: %d, want 401", code)
	}
	if code, _ := send(t, "POST", mcpURL, key, modernBody(3, "tools/list", ""), func(r *http.Request) {
		modernHeaders("tools/list", "")(r)
		r.Host = "evil.example"
	}); code != 403 {
		t.Fatalf("foreign Host: %d, want 403", code)
	}
	if code, _ := send(t, "POST", mcpURL, key, `{"jsonrpc":"2.0","id":4,"method":"tools/list","method":"x"}`, modernHeaders("tools/list", "")); code != 400 {
		t.Fatalf("duplicate key: %d, want 400", code)
	}

	code, text := send(t, "GET", adminURL+"/metrics", "", "", nil)
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	for _, want := range []string{
		`mcpgate_requests_total{era="modern",method="tools/call",outcome="ok"} 1`,
		`mcpgate_requests_total{era="none",method="none",outcome="refused"} 2`,
		`mcpgate_request_duration_seconds_count{era="modern",method="tools/call"} 1`,
		`mcpgate_auth_failures_total{reason="no_credentials"} 1`,
		`mcpgate_auth_failures_total{reason="malformed"} 0`,
		`mcpgate_auth_failures_total{reason="invalid"} 0`,
		`mcpgate_refusals_total{reason="host"} 1`,
		`mcpgate_refusals_total{reason="unauthenticated"} 1`,
		`mcpgate_refusals_total{reason="bad_json"} 1`,
		`mcpgate_refusals_total{reason="origin"} 0`,
		`mcpgate_refusals_total{reason="audit_unavailable"} 0`,
		`mcpgate_audit_records_total 4`, // the call and three denials
		`mcpgate_audit_failures_total 0`,
		`mcpgate_audit_append_duration_seconds_count 4`,
		`mcpgate_build_info{version="devel"} 1`,
		"\ngo_goroutines ",
		"\nprocess_open_fds ",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if n := strings.Count(text, "mcpgate_requests_total{"); n != 2 {
		t.Errorf("%d mcpgate_requests_total series, want 2:\n%s", n, text)
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", text)
	}
}

func TestAdminHealthAndReadiness(t *testing.T) {
	g, _, adminURL, _ := servedWithAdmin(t)
	if code, b := send(t, "GET", adminURL+"/healthz", "", "", nil); code != 200 || b != "ok\n" {
		t.Fatalf("/healthz: %d %q", code, b)
	}
	if code, b := send(t, "GET", adminURL+"/readyz", "", "", nil); code != 200 || b != "ready\n" {
		t.Fatalf("/readyz while serving: %d %q", code, b)
	}
	// An audit log that cannot take records makes the gateway unready.
	if err := g.audit.Close(); err != nil {
		t.Fatal(err)
	}
	if code, b := send(t, "GET", adminURL+"/readyz", "", "", nil); code != 503 || !strings.Contains(b, "audit log") {
		t.Fatalf("/readyz with the audit log closed: %d %q, want 503 naming the audit log", code, b)
	}
	// The admin endpoints are not for a page under a rebinding name.
	if code, _ := send(t, "GET", adminURL+"/metrics", "", "", func(r *http.Request) { r.Host = "evil.example" }); code != 403 {
		t.Fatalf("/metrics under a foreign Host: %d, want 403", code)
	}
}

func TestNotReadyBeforeServe(t *testing.T) {
	tg := newTestGateway(t, nil)
	if reason := tg.notReady(); reason == "" {
		t.Fatal("ready before Serve")
	}
}

// TestMethodLabelIsBounded: a client cannot grow the label set by inventing
// method names.
func TestMethodLabelIsBounded(t *testing.T) {
	tg := newTestGateway(t, nil)
	for i := range 1000 {
		name := fmt.Sprintf("x/%s", rand.Text())
		body := fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":%q,"params":{}}`, i, name)
		tg.post(t, tg.keyA, body, nil)
	}
	families, err := tg.Metrics().Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var series int
	var total float64
	for _, f := range families {
		if f.GetName() != "mcpgate_requests_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			series++
			total += m.GetCounter().GetValue()
			for _, l := range m.GetLabel() {
				if l.GetName() == "method" && l.GetValue() != telemetry.Method(l.GetValue()) {
					t.Errorf("unbounded method label %q", l.GetValue())
				}
			}
		}
	}
	if total != 1000 || series > 3*3*telemetry.KnownMethodCount() {
		t.Fatalf("%v requests in %d series", total, series)
	}
	if series > 3 {
		t.Fatalf("1000 unknown methods made %d series, want at most one per era and outcome", series)
	}
}
