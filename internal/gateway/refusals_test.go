package gateway

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/config"
)

func TestSourceAddress(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"192.0.2.7:5555", "192.0.2.7"},
		{"192.0.2.7", "192.0.2.7"},
		{"[2001:db8:1:2:3:4:5:6]:443", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2:ffff::1]:1", "2001:db8:1:2::/64"}, // the same /64
		{"[::ffff:192.0.2.7]:80", "192.0.2.7"},            // IPv4-mapped
		{"@", "@"},                                        // not an IP: its own key
		{"", ""},
	} {
		if got := sourceAddress(tt.in); got != tt.want {
			t.Errorf("sourceAddress(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// TestRefusalRecordsBudget: an address gets its burst of records, then
// its refusals are held for a summary, which is due only after
// refusalSummaryEvery (or when forced); the budget refills with time, and
// all addresses together share a total budget.
func TestRefusalRecordsBudget(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	r := newRefusalRecords(clock.Now)
	admitted := 0
	addr := refusalSource{address: "192.0.2.1"}
	for range 100 {
		if r.admit(addr) {
			admitted++
		}
	}
	if admitted != refusalRecordsBurst {
		t.Fatalf("%d of 100 refusals recorded one by one, want the burst of %d", admitted, refusalRecordsBurst)
	}
	if got := r.due(false); got != nil {
		t.Fatalf("a summary before %s: %v", refusalSummaryEvery, got)
	}
	clock.advance(refusalSummaryEvery)
	if got := r.due(false); got[addr] != 100-refusalRecordsBurst || len(got) != 1 {
		t.Fatalf("summary %v, want 192.0.2.1: %d", got, 100-refusalRecordsBurst)
	}
	if got := r.due(true); got != nil {
		t.Fatalf("a second summary of the same refusals: %v", got)
	}
	// Ten seconds refilled the address's bucket.
	if !r.admit(addr) {
		t.Fatal("the address's budget did not refill")
	}

	// The total budget: many addresses, each within its own burst.
	r = newRefusalRecords(clock.Now)
	admitted = 0
	for i := range 1000 {
		if r.admit(refusalSource{address: fmt.Sprintf("198.51.%d.%d", i/256, i%256)}) {
			admitted++
		}
	}
	if admitted != refusalRecordsTotalBurst {
		t.Fatalf("%d of 1000 refusals from many addresses recorded one by one, want the total burst of %d", admitted, refusalRecordsTotalBurst)
	}
	held := 0
	for _, n := range r.due(true) {
		held += n
	}
	if admitted+held != 1000 {
		t.Fatalf("%d recorded + %d held, want all 1000 accounted for", admitted, held)
	}
}

// TestRefusalRecordsPrincipalApart: a principal's budget is its own, not
// its address's: a flood of bad keys from an address leaves a principal
// calling from it its own records.
func TestRefusalRecordsPrincipalApart(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	r := newRefusalRecords(clock.Now)
	for range 100 {
		r.admit(refusalSource{address: "192.0.2.1"})
	}
	if !r.admit(refusalSource{principal: "192.0.2.1"}) {
		t.Fatal("a principal shares the budget of an address")
	}
}

// TestRefusalRecordsBounded: past refusalSources held addresses, the rest
// are summarized together; the count is kept.
func TestRefusalRecordsBounded(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	r := newRefusalRecords(clock.Now)
	const n = refusalSources + 500
	for i := range n {
		addr := refusalSource{address: fmt.Sprintf("10.0.%d.%d", i/256, i%256)}
		for range refusalRecordsBurst + 1 {
			r.admit(addr)
		}
	}
	got := r.due(true)
	if len(got) > refusalSources+1 {
		t.Fatalf("%d addresses held, want at most %d", len(got), refusalSources+1)
	}
	total := 0
	for _, c := range got {
		total += c
	}
	if total == 0 || got[otherSources] == 0 {
		t.Fatalf("held %d, other sources %d: want the overflow summarized together", total, got[otherSources])
	}
}

// TestUnauthenticatedFloodBoundsRecords floods a real gateway from one
// address with requests refused before a principal is known (bad keys, and
// a foreign Host or a cross-site Origin, which the guard refuses before
// authentication) while an authenticated principal calls: every bad request
// is refused with its status, the principal's calls succeed, the audit log
// holds at most the budget of individual records plus summaries, and the
// summaries' counts account for every refusal.
func TestUnauthenticatedFloodBoundsRecords(t *testing.T) {
	for _, tc := range []struct {
		name   string
		key    string
		edit   func(*http.Request)
		status int
		reason string // in each record one by one
	}{
		{"bad-key", "mgk_wrong", nil, http.StatusUnauthorized, "unauthorized"},
		{"foreign-host", "", func(r *http.Request) { r.Host = "evil.example.com" }, http.StatusForbidden,
			`forbidden: the Host header "evil.example.com" is not allowed`},
		{"cross-site-origin", "", func(r *http.Request) { r.Header.Set("Origin", "https://evil.example.com") }, http.StatusForbidden,
			`forbidden: the Origin header "https://evil.example.com" is not allowed`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tg, logPath := auditedGateway(t, nil)
			const flood = 400
			headers := modernHeaders("tools/list", "")
			for i := range flood {
				resp, _ := tg.post(t, tc.key, modernBody(i, "tools/list", ""), func(r *http.Request) {
					headers(r)
					if tc.edit != nil {
						tc.edit(r)
					}
				})
				if resp.StatusCode != tc.status {
					t.Fatalf("refused request: status %d, want %d", resp.StatusCode, tc.status)
				}
				if i%100 == 0 {
					if r := callTool(t, tg, tg.keyA, "pid"); r.Error != nil {
						t.Fatalf("alice's call during the flood: %+v", r.Error)
					}
				}
			}
			one, summarized, summaries := 0, 0, 0
			for _, ev := range auditEvents(t, tg, logPath) {
				switch {
				case ev.Method == "http:refusals":
					summaries++
					summarized += ev.Count
					if ev.Remote != "127.0.0.1" || ev.Count <= 0 {
						t.Errorf("summary record %+v: want remote 127.0.0.1 and a count", ev)
					}
				case ev.Principal == "" && ev.Outcome == "refused":
					one++
					if ev.Remote != "127.0.0.1" || ev.HTTPStatus != tc.status || !strings.Contains(ev.Reason, tc.reason) {
						t.Errorf("refusal record %+v: want the client's address, status %d, reason %q", ev, tc.status, tc.reason)
					}
				}
			}
			if one+summarized != flood {
				t.Fatalf("%d refusals recorded one by one + %d in %d summaries, want all %d accounted for", one, summarized, summaries, flood)
			}
			// The burst, plus what the budget refilled while the test ran.
			if one > refusalRecordsBurst+refusalRecordsPerSource*30 {
				t.Fatalf("%d refusals recorded one by one, want the budget to hold", one)
			}
			if summaries == 0 {
				t.Fatal("no summary record")
			}
		})
	}
}

// TestRateLimitedFloodBoundsRecords: a principal that keeps calling past its
// rate limit (a runaway agent) is answered 429 every time, but its
// refusals are recorded one by one only within the budget; the summaries,
// under its principal, account for the rest. Another principal is not
// affected.
func TestRateLimitedFloodBoundsRecords(t *testing.T) {
	tg, logPath := auditedGateway(t, func(c *config.Config) {
		c.Limits.PerPrincipal.Rate, c.Limits.PerPrincipal.Burst = 1, 1
	})
	const flood = 300
	limited := 0
	for range flood {
		resp, _ := tg.post(t, tg.keyA, modernBody(1, "tools/list", ""), modernHeaders("tools/list", ""))
		if resp.StatusCode == http.StatusTooManyRequests {
			limited++
		}
	}
	if limited < flood-10 {
		t.Fatalf("%d of %d calls past the rate limit were refused", limited, flood)
	}
	if resp, _ := tg.post(t, tg.keyB, modernBody(1, "tools/list", ""), modernHeaders("tools/list", "")); resp.StatusCode != http.StatusOK {
		t.Fatalf("bob during alice's flood: status %d", resp.StatusCode)
	}
	one, summarized := 0, 0
	for _, ev := range auditEvents(t, tg, logPath) {
		switch {
		case ev.Method == "http:refusals":
			if ev.Principal != "alice" || ev.Remote != "" {
				t.Errorf("summary %+v: want alice's, without an address", ev)
			}
			summarized += ev.Count
		case ev.Principal == "alice" && ev.Outcome == "refused" && ev.HTTPStatus == http.StatusTooManyRequests:
			one++
		}
	}
	if one+summarized != limited {
		t.Fatalf("%d recorded one by one + %d summarized, want all %d refusals accounted for", one, summarized, limited)
	}
	if one > refusalRecordsBurst+refusalRecordsPerSource*30 || summarized == 0 {
		t.Fatalf("%d refusals recorded one by one, %d summarized: want the budget to hold", one, summarized)
	}
}
