package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/audit"
	"github.com/mcpgate/mcpgate/internal/config"
)

// auditedGateway is a test gateway auditing to a file; it returns the path.
func auditedGateway(t *testing.T, edit func(*config.Config)) (*testGateway, string) {
	t.Helper()
	keyPath, logPath, _ := auditFiles(t)
	tg := newTestGateway(t, func(c *config.Config) {
		c.Audit.Path, c.Audit.SigningKey = logPath, keyPath
		if edit != nil {
			edit(c)
		}
	})
	return tg, logPath
}

// auditEvents reads the audit records of a closed gateway's log.
func auditEvents(t *testing.T, tg *testGateway, logPath string) []audit.Event {
	t.Helper()
	if err := tg.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	var evs []audit.Event
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var line struct {
			Type  string       `json:"type"`
			Event *audit.Event `json:"event"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatal(err)
		}
		if line.Event != nil {
			evs = append(evs, *line.Event)
		}
	}
	return evs
}

// scrape returns the gateway's metrics in the text format.
func scrape(t *testing.T, g *Gateway) string {
	t.Helper()
	rec := httptest.NewRecorder()
	g.metrics.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	return rec.Body.String()
}

func echoCall(id int) string {
	return modernBody(id, "tools/call", `"name":"echo","arguments":{"message":"hi"}`)
}

// TestOnePrincipalFloodsAnotherIsServed: alice floods tools/call far past
// her burst and gets 429s with Retry-After; bob, calling at a normal rate in
// the same period, is never refused. The 429s are audited as denials with
// their reason and counted.
func TestOnePrincipalFloodsAnotherIsServed(t *testing.T) {
	tg, logPath := auditedGateway(t, func(c *config.Config) {
		c.Limits.PerPrincipal = config.PrincipalLimits{Rate: 10, Burst: 5, Concurrent: 8}
	})

	stop := make(chan struct{})
	var floodOK, flood429 atomic.Int64
	var badRetry atomic.Value
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				resp, b, err := postNoFatal(tg, tg.keyA, echoCall(i), modernHeaders("tools/call", "echo"))
				if err != nil {
					badRetry.Store("error " + err.Error())
					return
				}
				switch resp.StatusCode {
				case http.StatusOK:
					floodOK.Add(1)
				case http.StatusTooManyRequests:
					flood429.Add(1)
					if ra := resp.Header.Get("Retry-After"); ra != "1" {
						badRetry.Store("Retry-After " + ra)
					}
					var e rpcError
					if json.Unmarshal(b, &e) != nil || e.Error == nil || e.Error.Code != CodeRateLimited ||
						!strings.Contains(e.Error.Message, "rate limited") {
						badRetry.Store("body " + string(b))
					}
				default:
					badRetry.Store("status " + resp.Status)
				}
			}
		})
	}

	// Bob: 12 calls at about 8 a second, under his 10 a second.
	const bobCalls = 12
	for i := range bobCalls {
		resp, b := tg.post(t, tg.keyB, echoCall(1000+i), modernHeaders("tools/call", "echo"))
		if resp.StatusCode != http.StatusOK {
			t.Errorf("bob's call %d: %s %s", i, resp.Status, b)
		}
		time.Sleep(125 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if v := badRetry.Load(); v != nil {
		t.Fatalf("a flood answer was wrong: %v", v)
	}
	t.Logf("alice: %d allowed, %d refused with 429; bob: %d allowed", floodOK.Load(), flood429.Load(), bobCalls)
	if flood429.Load() == 0 {
		t.Fatal("alice's flood was never refused")
	}
	// About 1.5s at 10/s plus a burst of 5, with slack for a slow machine.
	if n := floodOK.Load(); n > 5+10*3 {
		t.Errorf("alice got %d calls through, far past her limit", n)
	}

	metrics := scrape(t, tg.Gateway)
	for _, want := range []string{
		`mcpgate_refusals_total{reason="rate_limited"} ` + itoa(flood429.Load()),
		`mcpgate_refusals_total{reason="concurrency"} 0`,
		`mcpgate_requests_total{era="none",method="tools/call",outcome="refused"} ` + itoa(flood429.Load()),
	} {
		if !strings.Contains(metrics, want+"\n") {
			t.Errorf("metrics lack %q", want)
		}
	}

	// Every 429 is accounted for: recorded one by one within the budget of
	// records (refusals.go), the rest counted in summary records.
	var denied, bobAllowed int
	for _, ev := range auditEvents(t, tg, logPath) {
		switch {
		case ev.Method == "http:refusals":
			if ev.Principal != "alice" || ev.Count <= 0 {
				t.Errorf("unexpected summary %+v", ev)
			}
			denied += ev.Count
		case ev.Decision == audit.Deny:
			if ev.Principal != "alice" || ev.Method != "tools/call" || ev.Name != "echo" ||
				ev.HTTPStatus != http.StatusTooManyRequests || ev.ErrorCode != CodeRateLimited ||
				!strings.HasPrefix(ev.Reason, "rate limited: too many requests from this principal") {
				t.Errorf("unexpected denial %+v", ev)
			}
			denied++
		case ev.Principal == "bob" && ev.Stage == audit.StageRequest:
			bobAllowed++ // each call also has a result record, not counted
		}
	}
	if int64(denied) != flood429.Load() || bobAllowed != bobCalls {
		t.Errorf("audit: %d denials (want %d), %d of bob's calls allowed (want %d)", denied, flood429.Load(), bobAllowed, bobCalls)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// postNoFatal is testGateway.post for goroutines other than the test's.
func postNoFatal(tg *testGateway, key, body string, edit func(*http.Request)) (*http.Response, []byte, error) {
	req, err := http.NewRequest(http.MethodPost, tg.URL, strings.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Authorization", "Bearer "+key)
	edit(req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

// TestPerToolRateLimit: with per_principal_tool on, one tool's bucket runs
// dry without touching another tool's or another principal's.
func TestPerToolRateLimit(t *testing.T) {
	tg := newTestGateway(t, func(c *config.Config) {
		c.Limits.PerPrincipalTool = config.RateLimit{Rate: 0.01, Burst: 2} // a token every 100s
	})
	call := func(key, tool string, id int) (*http.Response, []byte) {
		args := `"arguments":{"message":"hi"}`
		if tool != "echo" {
			args = `"arguments":{}`
		}
		return tg.post(t, key, modernBody(id, "tools/call", `"name":"`+tool+`",`+args), modernHeaders("tools/call", tool))
	}
	for i := range 2 {
		if resp, b := call(tg.keyA, "echo", i); resp.StatusCode != 200 {
			t.Fatalf("call %d: %s %s", i, resp.Status, b)
		}
	}
	resp, b := call(tg.keyA, "echo", 3)
	if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(string(b), "too many calls of this tool") {
		t.Fatalf("third echo: %s %s", resp.Status, b)
	}
	if ra := resp.Header.Get("Retry-After"); ra != "100" {
		t.Fatalf("Retry-After %q, want 100", ra)
	}
	if resp, b := call(tg.keyB, "echo", 4); resp.StatusCode != 200 {
		t.Fatalf("bob's echo: %s %s", resp.Status, b)
	}
	// Other methods are limited per principal only.
	if resp, b := tg.post(t, tg.keyA, modernBody(5, "tools/list", ""), modernHeaders("tools/list", "")); resp.StatusCode != 200 {
		t.Fatalf("alice's tools/list: %s %s", resp.Status, b)
	}
}

// TestConcurrencyLimit: a principal at its cap of calls in flight gets 429;
// another principal is served; the slot comes back when a call ends.
func TestConcurrencyLimit(t *testing.T) {
	tg := newTestGateway(t, func(c *config.Config) {
		c.Limits.PerPrincipal.Concurrent = 1
	})
	started, cancelled := addBlockingTool(t, tg)
	hangUp, done := blockedCall(tg, tg.keyA)
	defer hangUp()
	<-started
	resp, b := tg.post(t, tg.keyA, echoCall(2), modernHeaders("tools/call", "echo"))
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "1" ||
		!strings.Contains(string(b), "too many calls in flight for this principal") {
		t.Fatalf("second call in flight: %s Retry-After %q %s", resp.Status, resp.Header.Get("Retry-After"), b)
	}
	if resp, b := tg.post(t, tg.keyB, echoCall(3), modernHeaders("tools/call", "echo")); resp.StatusCode != 200 {
		t.Fatalf("bob: %s %s", resp.Status, b)
	}
	hangUp()
	<-cancelled
	<-done
	// The slot is released when the handler returns, just after the tool does.
	deadline := time.Now().Add(5 * time.Second)
	for {
		if tg.front.limiter.inFlight() == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the slot was not released")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if resp, b := tg.post(t, tg.keyA, echoCall(4), modernHeaders("tools/call", "echo")); resp.StatusCode != 200 {
		t.Fatalf("after the call ended: %s %s", resp.Status, b)
	}
	if m := scrape(t, tg.Gateway); !strings.Contains(m, `mcpgate_refusals_total{reason="concurrency"} 1`+"\n") {
		t.Errorf("concurrency refusal not counted")
	}
}

// TestGETStreamsAreRateLimitedButHoldNoSlot: a legacy GET event stream takes
// a token but no concurrency slot, so an open stream does not use up the
// principal's calls in flight; GETs past the bucket get 429.
func TestGETStreamsAreRateLimitedButHoldNoSlot(t *testing.T) {
	tg := newTestGateway(t, func(c *config.Config) {
		c.Limits.PerPrincipal = config.PrincipalLimits{Rate: 0.01, Burst: 4, Concurrent: 1}
	})
	sid := legacyInit(t, tg, tg.keyA) // two tokens: initialize, initialized
	ctx, hangUp := context.WithCancel(context.Background())
	defer hangUp()
	get := func() *http.Response {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, tg.URL, nil)
		req.Header.Set("Accept", "text/event-stream")
		req.Header.Set("Authorization", "Bearer "+tg.keyA)
		req.Header.Set("Mcp-Session-Id", sid)
		req.Header.Set("MCP-Protocol-Version", "2025-11-25")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	stream := get() // third token; the stream stays open
	defer stream.Body.Close()
	if stream.StatusCode != http.StatusOK {
		t.Fatalf("GET stream: %s", stream.Status)
	}
	if total := tg.front.limiter.inFlight(); total != 0 {
		t.Fatalf("an open stream holds %d slots", total)
	}
	// The fourth token: a call while the stream is open is served.
	if resp, b := tg.post(t, tg.keyA, echoCall(2), modernHeaders("tools/call", "echo")); resp.StatusCode != 200 {
		t.Fatalf("call beside an open stream: %s %s", resp.Status, b)
	}
	resp := get() // no token left
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("GET past the bucket: %s, Retry-After %q", resp.Status, resp.Header.Get("Retry-After"))
	}
	hangUp()
}

// blockedCall calls the blocking tool (addBlockingTool) as key in the
// background; hangUp makes the client go away, and done closes when its
// request has returned.
func blockedCall(tg *testGateway, key string) (hangUp func(), done chan struct{}) {
	done = make(chan struct{})
	ctx, hangUp := context.WithCancel(context.Background())
	go func() {
		defer close(done)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, tg.URL, strings.NewReader(modernBody(1, "tools/call", `"name":"block","arguments":{}`)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("Authorization", "Bearer "+key)
		modernHeaders("tools/call", "block")(req)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	return hangUp, done
}
