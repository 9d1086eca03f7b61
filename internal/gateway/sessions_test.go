package gateway

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/config"
)

// fakeSessions is a sessionHost whose sessions are a set the test controls.
type fakeSessions struct {
	mu    sync.Mutex
	live  map[string]bool
	ended []string
}

func (f *fakeSessions) liveSessions() map[string]bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := map[string]bool{}
	for id := range f.live {
		m[id] = true
	}
	return m
}

func (f *fakeSessions) endSession(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.live, id)
	f.ended = append(f.ended, id)
}

func (f *fakeSessions) create(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.live[id] = true
}

func TestSessionTable(t *testing.T) {
	now := time.Unix(1000, 0)
	host := &fakeSessions{live: map[string]bool{}}
	tab := newSessionTable(4, 2, host, func() time.Time { return now })
	open := func(owner, id string) bool {
		t.Helper()
		created, _, ok := tab.admit(owner)
		if !ok {
			return false
		}
		host.create(id)
		created(id)
		now = now.Add(time.Second)
		return true
	}

	// Under both caps: admitted, nothing ended.
	if !open("alice", "a1") || !open("alice", "a2") || !open("bob", "b1") {
		t.Fatal("sessions under the caps were refused")
	}
	// alice's third: her oldest idle session (a1) makes room.
	if !open("alice", "a3") || !slices.Equal(host.ended, []string{"a1"}) {
		t.Fatalf("alice's third session: ended %v, want [a1]", host.ended)
	}
	// a2 in use (a request or stream in progress), a3 used since: alice's
	// next ends a3, never the busy a2.
	done := tab.use("a2")
	now = now.Add(time.Second)
	if !open("alice", "a4") || !slices.Equal(host.ended, []string{"a1", "a3"}) {
		t.Fatalf("with a2 busy: ended %v, want [a1 a3]", host.ended)
	}
	// Both of alice's sessions busy: refused, nothing ended.
	done4 := tab.use("a4")
	if _, _, ok := tab.admit("alice"); ok {
		t.Fatal("a session past the per-principal cap with none idle was admitted")
	}
	if len(host.ended) != 2 {
		t.Fatalf("a refused admission ended %v", host.ended[2:])
	}
	done()
	done()  // done is idempotent
	done4() // all idle again

	// Total cap (4): a2, a4, b1 open; carol's first fits, dave's ends the
	// gateway's oldest idle session.
	if !open("carol", "c1") {
		t.Fatal("carol refused under the total cap")
	}
	if !open("dave", "d1") || host.ended[len(host.ended)-1] != "b1" {
		t.Fatalf("dave past the total cap: ended %v, want b1 (idle longest) last", host.ended)
	}

	// A session ended elsewhere (DELETE, idle timeout) frees its slot.
	host.endSession("c1")
	before := len(host.ended)
	if !open("erin", "e1") || len(host.ended) != before {
		t.Fatalf("erin: a slot freed by an ended session was not reused (ended %v)", host.ended[before:])
	}
}

// TestSessionTablePendingCounts: admissions not yet created hold their
// slots, so concurrent initializes cannot overshoot a cap.
func TestSessionTablePendingCounts(t *testing.T) {
	host := &fakeSessions{live: map[string]bool{}}
	tab := newSessionTable(100, 3, host, nil)
	var creates []func(string)
	for i := range 3 {
		created, _, ok := tab.admit("alice")
		if !ok {
			t.Fatalf("admission %d refused", i)
		}
		creates = append(creates, created)
	}
	if _, _, ok := tab.admit("alice"); ok {
		t.Fatal("a fourth concurrent admission past a cap of 3 was let in")
	}
	for _, created := range creates {
		created("") // the SDK made no session (a failed initialize)
	}
	if _, _, ok := tab.admit("alice"); !ok {
		t.Fatal("slots of failed initializes were not given back")
	}
}

// FuzzSessionTable: whatever the sequence of admissions, uses and ends,
// the table never lets a principal exceed its cap or the gateway its total
// among the sessions it knows, and never ends a busy session.
func FuzzSessionTable(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9})
	f.Add([]byte{0, 0, 0, 0, 16, 16, 32, 0, 0})
	f.Fuzz(func(t *testing.T, ops []byte) {
		host := &fakeSessions{live: map[string]bool{}}
		tab := newSessionTable(5, 2, host, nil)
		busy := map[string]int{}
		var dones []func()
		var doneIDs []string
		n := 0
		for _, op := range ops {
			owner := fmt.Sprint("p", op%4)
			switch op / 4 % 4 {
			case 0, 1: // open a session
				created, _, ok := tab.admit(owner)
				if ok {
					n++
					id := fmt.Sprint("s", n)
					host.create(id)
					created(id)
				}
			case 2: // use one
				ids := slices.Sorted(func(yield func(string) bool) {
					for id := range host.liveSessions() {
						if !yield(id) {
							return
						}
					}
				})
				if len(ids) > 0 {
					id := ids[int(op)%len(ids)]
					dones = append(dones, tab.use(id))
					doneIDs = append(doneIDs, id)
					busy[id]++
				}
			case 3: // end the oldest use
				if len(dones) > 0 {
					dones[0]()
					busy[doneIDs[0]]--
					dones, doneIDs = dones[1:], doneIDs[1:]
				}
			}
			for _, id := range host.ended {
				if busy[id] > 0 {
					t.Fatalf("busy session %s was ended", id)
				}
			}
			tab.mu.Lock()
			per := map[string]int{}
			for _, e := range tab.sessions {
				per[e.owner]++
			}
			total := len(tab.sessions)
			tab.mu.Unlock()
			if total > 5 {
				t.Fatalf("%d sessions, total cap 5", total)
			}
			for o, c := range per {
				if c > 2 {
					t.Fatalf("%s holds %d sessions, cap 2", o, c)
				}
			}
		}
	})
}

// TestSessionCapsThroughGateway: with limits.sessions.per_principal 2, a
// third legacy session of alice's ends her oldest idle one (whose id then
// answers 404); with both her sessions holding event streams, a new one is
// refused with 429 and counted. (Per-owner accounting is in
// TestSessionTable.)
func TestSessionCapsThroughGateway(t *testing.T) {
	tg := newRemoteGateway(t, func(c *config.Config) {
		c.Limits.Sessions = config.SessionLimits{Total: 10, PerPrincipal: 2}
	}, nil)
	inSession := func(id string) func(*http.Request) {
		return func(r *http.Request) {
			r.Header.Set("Mcp-Session-Id", id)
			r.Header.Set("MCP-Protocol-Version", "2025-11-25")
		}
	}
	list := `{"jsonrpc":"2.0","id":7,"method":"tools/list"}`
	a1 := legacyInit(t, tg, tg.keyA)
	a2 := legacyInit(t, tg, tg.keyA)
	if resp, b := tg.post(t, tg.keyA, list, inSession(a2)); resp.StatusCode != http.StatusOK {
		t.Fatalf("a2 in use: %d %s", resp.StatusCode, b) // a1 is now idle for longest
	}
	a3 := legacyInit(t, tg, tg.keyA)
	if resp, _ := tg.post(t, tg.keyA, list, inSession(a1)); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("alice's oldest idle session answered %d after her third opened, want 404 (ended)", resp.StatusCode)
	}
	for _, id := range []string{a2, a3} {
		if resp, b := tg.post(t, tg.keyA, list, inSession(id)); resp.StatusCode != http.StatusOK {
			t.Fatalf("session %s: %d %s", id, resp.StatusCode, b)
		}
	}

	// Both of alice's sessions busy with an event stream: no room.
	for _, id := range []string{a2, a3} {
		req, _ := http.NewRequest(http.MethodGet, tg.URL, nil)
		req.Header.Set("Authorization", "Bearer "+tg.keyA)
		req.Header.Set("Accept", "text/event-stream")
		inSession(id)(req)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("event stream of %s: %v %v", id, err, resp)
		}
		t.Cleanup(func() { resp.Body.Close() })
	}
	resp, b := tg.post(t, tg.keyA, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"0"}}}`, nil)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(b), "too many sessions") {
		t.Fatalf("a third session with both busy: %d %q %s, want 429 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"), b)
	}
	if m := scrape(t, tg.Gateway); !strings.Contains(m, `mcpgate_refusals_total{reason="sessions"} 1`+"\n") {
		t.Errorf("the refusal is not counted:\n%s", m)
	}
}
