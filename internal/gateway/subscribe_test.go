package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpgate/mcpgate/internal/audit"
	"github.com/mcpgate/mcpgate/internal/config"
	"github.com/mcpgate/mcpgate/internal/policy"
)

// runSubscriptionServer is the upstream of the subscription tests, run as a
// child of the gateway under test: a stdio MCP server with two subscribable
// resources, sub://a and sub://b. Its SDK calls the subscribe handlers for
// resources/subscribe and resources/unsubscribe (2025-11-25) and for the
// start and end of a subscriptions/listen stream (2026-07-28); each call
// appends "<pid> subscribe <uri>" or "<pid> unsubscribe <uri>" to
// $MARKERS/subs.log. Its tool touch {uri} announces an update of uri to
// the server's subscribers and answers with the child's process id.
func runSubscriptionServer() int {
	logPath := filepath.Join(os.Getenv("MARKERS"), "subs.log")
	pid := strconv.Itoa(os.Getpid())
	var mu sync.Mutex
	record := func(what, uri string) error {
		mu.Lock()
		defer mu.Unlock()
		f, err := os.OpenFile(logPath, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = fmt.Fprintf(f, "%s %s %s\n", pid, what, uri)
		return err
	}
	s := mcp.NewServer(&mcp.Implementation{Name: "subserver", Version: "1"}, &mcp.ServerOptions{
		SubscribeHandler: func(_ context.Context, req *mcp.SubscribeRequest) error { return record("subscribe", req.Params.URI) },
		UnsubscribeHandler: func(_ context.Context, req *mcp.UnsubscribeRequest) error {
			return record("unsubscribe", req.Params.URI)
		},
	})
	for _, uri := range []string{"sub://a", "sub://b"} {
		s.AddResource(&mcp.Resource{Name: strings.TrimPrefix(uri, "sub://"), URI: uri, MIMEType: "text/plain"},
			func(context.Context, *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
				return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: uri, MIMEType: "text/plain", Text: pid}}}, nil
			})
	}
	type touchArgs struct {
		URI string `json:"uri"`
	}
	mcp.AddTool(s, &mcp.Tool{Name: "touch"}, func(ctx context.Context, _ *mcp.CallToolRequest, in touchArgs) (*mcp.CallToolResult, any, error) {
		err := s.ResourceUpdated(ctx, &mcp.ResourceUpdatedNotificationParams{URI: in.URI})
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: pid}}}, nil, err
	})
	if err := s.Run(context.Background(), &mcp.StdioTransport{}); err != nil {
		return 1
	}
	return 0
}

// newSubscriptionGateway starts a test gateway whose one upstream, "s", is
// the subscription server (names unprefixed), changed by edit; more edits
// the rest of the config. It returns where the server's log is written.
func newSubscriptionGateway(t *testing.T, edit func(*config.Upstream), more func(*config.Config)) (*testGateway, string) {
	t.Helper()
	markers := t.TempDir()
	none := ""
	tg := newTestGateway(t, func(c *config.Config) {
		u := config.Upstream{
			Command:           []string{os.Args[0], "subserver"},
			Env:               map[string]config.Value{"MARKERS": {Literal: markers}},
			Namespace:         &none,
			InsecureNoSandbox: true,
		}
		if edit != nil {
			edit(&u)
		}
		c.Upstreams = map[string]config.Upstream{"s": u}
		if more != nil {
			more(c)
		}
	})
	return tg, markers
}

// upstreamSubscriptions reads the subscription server's log: for uri, the
// subscriptions each child process (by pid) holds now, and how many
// subscribe and unsubscribe calls reached the children in all.
func upstreamSubscriptions(t *testing.T, markers, uri string) (held map[string]int, subscribes, unsubscribes int) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(markers, "subs.log"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	held = map[string]int{}
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) != 3 || f[2] != uri {
			continue
		}
		switch f[1] {
		case "subscribe":
			held[f[0]]++
			subscribes++
		case "unsubscribe":
			held[f[0]]--
			unsubscribes++
		}
	}
	return held, subscribes, unsubscribes
}

// heldUpstream is the number of subscriptions to uri the children hold.
func heldUpstream(t *testing.T, markers, uri string) int {
	held, _, _ := upstreamSubscriptions(t, markers, uri)
	n := 0
	for _, k := range held {
		n += k
	}
	return n
}

// touch has the subscription server instance serving key announce an
// update of uri, and returns that instance's pid.
func touch(t *testing.T, tg *testGateway, key, uri string) string {
	t.Helper()
	resp, b := tg.post(t, key, modernBody(1, "tools/call", `"name":"touch","arguments":{"uri":"`+uri+`"}`), modernHeaders("tools/call", "touch"))
	r := decodeRPC(t, b)
	var res mcp.CallToolResult
	if resp.StatusCode != http.StatusOK || r.Error != nil || json.Unmarshal(r.Result, &res) != nil || res.IsError || len(res.Content) != 1 {
		t.Fatalf("touch %s: status %d: %s", uri, resp.StatusCode, b)
	}
	return res.Content[0].(*mcp.TextContent).Text
}

// inSession makes a request one of the legacy session sid.
func inSession(sid string) func(*http.Request) {
	return func(r *http.Request) {
		r.Header.Set("Mcp-Session-Id", sid)
		r.Header.Set("MCP-Protocol-Version", "2025-11-25")
	}
}

// legacySubscribe sends resources/subscribe for uri in the legacy session
// sid, without a client that would unsubscribe or DELETE the session.
func legacySubscribe(t *testing.T, tg *testGateway, key, sid, uri string) {
	t.Helper()
	resp, b := tg.post(t, key, `{"jsonrpc":"2.0","id":2,"method":"resources/subscribe","params":{"uri":"`+uri+`"}}`, inSession(sid))
	if r := decodeRPC(t, b); resp.StatusCode != http.StatusOK || r.Error != nil {
		t.Fatalf("subscribe %s: status %d: %s", uri, resp.StatusCode, b)
	}
}

// bearer adds an API key to every request.
type bearer string

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+string(b))
	return http.DefaultTransport.RoundTrip(r)
}

// subscriber is an MCP client of the gateway that records the resource
// updates it is sent.
type subscriber struct {
	*mcp.ClientSession
	updates chan string
}

// connectSubscriber connects an SDK client to tg as key, speaking version.
func connectSubscriber(t *testing.T, tg *testGateway, key, version string) *subscriber {
	t.Helper()
	updates := make(chan string, 16)
	client := mcp.NewClient(&mcp.Implementation{Name: "subscriber", Version: "0"}, &mcp.ClientOptions{
		ResourceUpdatedHandler: func(_ context.Context, req *mcp.ResourceUpdatedNotificationRequest) {
			select {
			case updates <- req.Params.URI:
			default:
			}
		},
	})
	transport := &mcp.StreamableClientTransport{Endpoint: tg.URL, HTTPClient: &http.Client{Transport: bearer(key)}}
	cs, err := client.Connect(t.Context(), transport, &mcp.ClientSessionOptions{ProtocolVersion: version})
	if err != nil {
		t.Fatalf("connect as %s: %v", version, err)
	}
	t.Cleanup(func() { cs.Close() })
	return &subscriber{ClientSession: cs, updates: updates}
}

func (s *subscriber) subscribe(t *testing.T, uri string) {
	t.Helper()
	if err := s.Subscribe(t.Context(), &mcp.SubscribeParams{URI: uri}); err != nil {
		t.Fatalf("subscribe %s: %v", uri, err)
	}
}

// expectUpdate fails unless s is told of an update of uri within 10s.
func (s *subscriber) expectUpdate(t *testing.T, who, uri string) {
	t.Helper()
	select {
	case got := <-s.updates:
		if got != uri {
			t.Fatalf("%s was told of an update of %s, want %s", who, got, uri)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("%s was not told of the update of %s", who, uri)
	}
}

// expectNoUpdate fails if s is told of any update within d.
func (s *subscriber) expectNoUpdate(t *testing.T, who string, d time.Duration) {
	t.Helper()
	select {
	case got := <-s.updates:
		t.Fatalf("%s was told of an update of %s that is not for it", who, got)
	case <-time.After(d):
	}
}

// upstreamEras are the revisions the tests' upstream is spoken to in: the
// one it picks (2026-07-28, where a subscription is a listen stream) and
// 2025-11-25 (resources/subscribe and resources/unsubscribe).
var upstreamEras = []string{"", config.ProtocolLegacy}

func eraName(v string) string {
	if v == "" {
		return "upstream-modern"
	}
	return "upstream-" + v
}

// TestSubscriptionReleasedWhenSessionDeleted: a legacy session subscribes
// and is then DELETEd without unsubscribing; the upstream must see its
// subscription ended.
func TestSubscriptionReleasedWhenSessionDeleted(t *testing.T) {
	for _, era := range upstreamEras {
		t.Run(eraName(era), func(t *testing.T) {
			tg, markers := newSubscriptionGateway(t, func(u *config.Upstream) { u.ProtocolVersion = era }, nil)
			sid := legacyInit(t, tg, tg.keyA)
			legacySubscribe(t, tg, tg.keyA, sid, "sub://a")
			waitFor(t, "the upstream's subscription", func() bool { return heldUpstream(t, markers, "sub://a") == 1 })

			resp, b := request(t, http.MethodDelete, tg.URL, tg.keyA, "", inSession(sid))
			if resp.StatusCode/100 != 2 {
				t.Fatalf("DELETE: status %d: %s", resp.StatusCode, b)
			}
			waitFor(t, "the upstream's unsubscription", func() bool { return heldUpstream(t, markers, "sub://a") == 0 })
			if _, _, unsubscribes := upstreamSubscriptions(t, markers, "sub://a"); unsubscribes != 1 {
				t.Errorf("the upstream saw %d unsubscriptions, want 1", unsubscribes)
			}
		})
	}
}

// TestSubscriptionOutlivesOtherSession: two sessions of one principal
// subscribe to a resource (one of them twice); the upstream is subscribed
// once. When the one that subscribed twice closes, updates still reach the
// other and the upstream stays subscribed; when the last closes, the
// upstream is unsubscribed.
func TestSubscriptionOutlivesOtherSession(t *testing.T) {
	for _, era := range upstreamEras {
		t.Run(eraName(era), func(t *testing.T) {
			tg, markers := newSubscriptionGateway(t, func(u *config.Upstream) { u.ProtocolVersion = era }, nil)
			first := connectSubscriber(t, tg, tg.keyA, config.ProtocolLegacy)
			second := connectSubscriber(t, tg, tg.keyA, config.ProtocolLegacy)
			first.subscribe(t, "sub://a")
			first.subscribe(t, "sub://a")
			second.subscribe(t, "sub://a")
			waitFor(t, "the upstream's subscription", func() bool { return heldUpstream(t, markers, "sub://a") == 1 })

			touch(t, tg, tg.keyA, "sub://a")
			first.expectUpdate(t, "the first session", "sub://a")
			second.expectUpdate(t, "the second session", "sub://a")

			if err := first.Close(); err != nil { // DELETE
				t.Fatalf("close the first session: %v", err)
			}
			touch(t, tg, tg.keyA, "sub://a")
			second.expectUpdate(t, "the second session, after the first closed", "sub://a")
			time.Sleep(200 * time.Millisecond) // time for a wrong unsubscription to show
			if _, subscribes, unsubscribes := upstreamSubscriptions(t, markers, "sub://a"); subscribes != 1 || unsubscribes != 0 {
				t.Fatalf("with one session left, the upstream saw %d subscriptions and %d unsubscriptions, want 1 and 0", subscribes, unsubscribes)
			}

			if err := second.Close(); err != nil {
				t.Fatalf("close the second session: %v", err)
			}
			waitFor(t, "the upstream's unsubscription", func() bool { return heldUpstream(t, markers, "sub://a") == 0 })
		})
	}
}

// TestPerPrincipalSubscriptions: on an upstream with an instance per
// principal, alice and bob subscribe to the same URI; each subscription
// goes to the principal's own instance, and an update in one instance
// reaches only that principal's session. Unsubscribing (for a modern
// client: ending its listen stream) releases only that principal's
// upstream subscription. Both client eras; the upstream in each era.
func TestPerPrincipalSubscriptions(t *testing.T) {
	for _, tc := range []struct{ client, upstream string }{
		{config.ProtocolLegacy, ""},
		{config.ProtocolModern, config.ProtocolLegacy},
		{config.ProtocolModern, ""},
	} {
		t.Run("client-"+tc.client+"-"+eraName(tc.upstream), func(t *testing.T) {
			tg, markers := newSubscriptionGateway(t, func(u *config.Upstream) {
				u.Instances = config.InstancesPerPrincipal
				u.ProtocolVersion = tc.upstream
			}, nil)
			alice := connectSubscriber(t, tg, tg.keyA, tc.client)
			bob := connectSubscriber(t, tg, tg.keyB, tc.client)
			alice.subscribe(t, "sub://a")
			bob.subscribe(t, "sub://a")
			waitFor(t, "both instances' subscriptions", func() bool {
				held, _, _ := upstreamSubscriptions(t, markers, "sub://a")
				return len(held) == 2 && heldUpstream(t, markers, "sub://a") == 2
			})

			alicePID := touch(t, tg, tg.keyA, "sub://a")
			alice.expectUpdate(t, "alice", "sub://a")
			bob.expectNoUpdate(t, "bob, of an update in alice's instance,", 500*time.Millisecond)

			bobPID := touch(t, tg, tg.keyB, "sub://a")
			if bobPID == alicePID {
				t.Fatalf("alice and bob share instance pid %s", bobPID)
			}
			bob.expectUpdate(t, "bob", "sub://a")
			alice.expectNoUpdate(t, "alice, of an update in bob's instance,", 500*time.Millisecond)

			if err := alice.Unsubscribe(t.Context(), &mcp.UnsubscribeParams{URI: "sub://a"}); err != nil {
				t.Fatalf("alice unsubscribes: %v", err)
			}
			waitFor(t, "alice's instance's unsubscription", func() bool {
				held, _, _ := upstreamSubscriptions(t, markers, "sub://a")
				return held[alicePID] == 0
			})
			if held, _, _ := upstreamSubscriptions(t, markers, "sub://a"); held[bobPID] != 1 {
				t.Fatalf("bob's instance holds %d subscriptions after alice unsubscribed, want 1", held[bobPID])
			}
			touch(t, tg, tg.keyB, "sub://a")
			bob.expectUpdate(t, "bob, after alice unsubscribed", "sub://a")

			if err := bob.Close(); err != nil {
				t.Fatalf("close bob's session: %v", err)
			}
			waitFor(t, "bob's instance's unsubscription", func() bool {
				held, _, _ := upstreamSubscriptions(t, markers, "sub://a")
				return held[bobPID] == 0
			})
		})
	}
}

// TestEvictedSessionReleasesSubscription: a session ended by the session
// table to make room for its principal's next one releases its upstream
// subscription.
func TestEvictedSessionReleasesSubscription(t *testing.T) {
	tg, markers := newSubscriptionGateway(t, nil, func(c *config.Config) {
		c.Limits.Sessions.PerPrincipal = 1
	})
	sid := legacyInit(t, tg, tg.keyA)
	legacySubscribe(t, tg, tg.keyA, sid, "sub://b")
	waitFor(t, "the upstream's subscription", func() bool { return heldUpstream(t, markers, "sub://b") == 1 })
	if next := legacyInit(t, tg, tg.keyA); next == sid {
		t.Fatal("the second session got the first one's id")
	}
	waitFor(t, "the upstream release of the evicted session's subscription", func() bool { return heldUpstream(t, markers, "sub://b") == 0 })
}

// TestSubscriptionNeedsPolicy: a principal may subscribe only to resources
// the policy lets it read, in both eras. A 2026-07-28 client subscribes
// with a subscriptions/listen stream, whose URIs the SDK hands to the
// subscribe handler without a resources/subscribe request: each must still
// be decided, and a denied one never reaches the upstream.
func TestSubscriptionNeedsPolicy(t *testing.T) {
	for _, version := range []string{config.ProtocolLegacy, config.ProtocolModern} {
		t.Run("client-"+version, func(t *testing.T) {
			tg, markers := newSubscriptionGateway(t, nil, func(c *config.Config) {
				c.Auth.APIKeys[0].Roles = []string{"reader"}
				c.Policy = config.Policy{Rules: []config.PolicyRule{
					{Name: "read-a", Roles: []string{"reader"}, Allow: &config.PolicyTargets{Resources: []string{"sub://a"}, Tools: []string{"touch"}}},
				}}
			})
			alice := connectSubscriber(t, tg, tg.keyA, version)
			// The SDK's 2026-07-28 Subscribe opens the listen stream and
			// returns without waiting for its answer; the raw request below
			// shows that answer.
			if err := alice.Subscribe(t.Context(), &mcp.SubscribeParams{URI: "sub://b"}); version == config.ProtocolLegacy &&
				(err == nil || !strings.Contains(err.Error(), "not found")) {
				t.Fatalf("subscribe to a denied resource: err %v, want resource not found", err)
			}
			if version == config.ProtocolModern {
				// An accepted stream would stay open: bound the wait.
				ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
				defer cancel()
				headers := modernHeaders("subscriptions/listen", "")
				_, b := tg.post(t, tg.keyA, modernBody(3, "subscriptions/listen", `"notifications":{"resourceSubscriptions":["sub://a","sub://b"]}`),
					func(r *http.Request) { headers(r); *r = *r.WithContext(ctx) })
				// A denied resource is answered as one that does not exist.
				if r := decodeRPC(t, b); r.Error == nil || r.Error.Code != jsonrpc.CodeInvalidParams || !strings.Contains(r.Error.Message, "not found") {
					t.Fatalf("listen stream with a denied resource: %s, want resource not found (%d)", b, jsonrpc.CodeInvalidParams)
				}
			}
			alice.subscribe(t, "sub://a")
			waitFor(t, "the allowed subscription upstream", func() bool { return heldUpstream(t, markers, "sub://a") == 1 })
			if _, subscribes, _ := upstreamSubscriptions(t, markers, "sub://b"); subscribes != 0 {
				t.Fatalf("the upstream saw %d subscriptions to the denied sub://b", subscribes)
			}
			touch(t, tg, tg.keyA, "sub://b")
			alice.expectNoUpdate(t, "alice, of a resource she may not read,", 500*time.Millisecond)
		})
	}
}

// TestSubscriptionSurvivesUpstreamRestart: a shared upstream child that
// dies is restarted with its subscriptions: the new process is subscribed
// to what clients still hold, and its updates reach them. Both upstream
// eras.
func TestSubscriptionSurvivesUpstreamRestart(t *testing.T) {
	for _, era := range upstreamEras {
		t.Run(eraName(era), func(t *testing.T) {
			tg, markers := newSubscriptionGateway(t, func(u *config.Upstream) { u.ProtocolVersion = era }, nil)
			alice := connectSubscriber(t, tg, tg.keyA, config.ProtocolLegacy)
			alice.subscribe(t, "sub://a")
			waitFor(t, "the upstream's subscription", func() bool { return heldUpstream(t, markers, "sub://a") == 1 })
			before := touch(t, tg, tg.keyA, "sub://a")
			alice.expectUpdate(t, "alice", "sub://a")

			pid, err := strconv.Atoi(before)
			if err != nil {
				t.Fatalf("touch answered pid %q", before)
			}
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the restarted child's subscription", func() bool {
				held, _, _ := upstreamSubscriptions(t, markers, "sub://a")
				for p, n := range held {
					if p != before && n == 1 {
						return true
					}
				}
				return false
			})
			after := touch(t, tg, tg.keyA, "sub://a")
			if after == before {
				t.Fatalf("pid %s answered after it was killed", after)
			}
			alice.expectUpdate(t, "alice, from the restarted child", "sub://a")
		})
	}
}

// TestPolicyReloadRevokesSubscriptions: a subscription is a standing grant.
// When a reload takes away the rule that allowed it, the upstream's
// subscription ends (it was the only client's), updates stop, the
// revocation is audited, and a new subscription is refused; a subscription
// the new policy still allows stands. Both client eras.
func TestPolicyReloadRevokesSubscriptions(t *testing.T) {
	for _, version := range []string{config.ProtocolLegacy, config.ProtocolModern} {
		t.Run("client-"+version, func(t *testing.T) {
			keyPath, logPath, _ := auditFiles(t)
			rules := func(resources string) string {
				return fmt.Sprintf("    - {name: read, roles: [reader], allow: {resources: [%s], tools: [touch]}}\n", resources)
			}
			tg, markers := newSubscriptionGateway(t, nil, func(c *config.Config) {
				c.Audit.Path, c.Audit.SigningKey = logPath, keyPath
				c.Auth.APIKeys[0].Roles = []string{"reader"}
				c.Policy = config.Policy{Rules: []config.PolicyRule{
					{Name: "read", Roles: []string{"reader"}, Allow: &config.PolicyTargets{Resources: []string{"sub://a", "sub://b"}, Tools: []string{"touch"}}},
				}}
			})
			cfgFile := filepath.Join(t.TempDir(), "mcpgate.yaml")
			tg.cfgPath = cfgFile
			reload := func(resources string) {
				t.Helper()
				yaml := fmt.Sprintf("auth: {insecure_disable_auth: true}\nupstreams:\n  t: {command: [%q, testserver], insecure_no_sandbox: true}\npolicy:\n  rules:\n%s", os.Args[0], rules(resources))
				if err := os.WriteFile(cfgFile, []byte(yaml), 0o600); err != nil {
					t.Fatal(err)
				}
				if err := tg.ReloadPolicy(); err != nil {
					t.Fatalf("reload: %v", err)
				}
			}

			alice := connectSubscriber(t, tg, tg.keyA, version)
			alice.subscribe(t, "sub://a")
			alice.subscribe(t, "sub://b")
			waitFor(t, "the upstream's subscriptions", func() bool {
				return heldUpstream(t, markers, "sub://a") == 1 && heldUpstream(t, markers, "sub://b") == 1
			})
			touch(t, tg, tg.keyA, "sub://a")
			alice.expectUpdate(t, "alice, before the reload", "sub://a")

			reload(`"sub://b"`) // sub://a is no longer readable
			waitFor(t, "the upstream's unsubscription of sub://a", func() bool { return heldUpstream(t, markers, "sub://a") == 0 })
			touch(t, tg, tg.keyA, "sub://a")
			alice.expectNoUpdate(t, "alice, of sub://a after the reload revoked it,", 500*time.Millisecond)
			touch(t, tg, tg.keyA, "sub://b")
			alice.expectUpdate(t, "alice, of sub://b the new policy allows", "sub://b")
			if n := heldUpstream(t, markers, "sub://b"); n != 1 {
				t.Fatalf("the upstream holds %d subscriptions to sub://b, want 1", n)
			}
			if version == config.ProtocolLegacy {
				if err := alice.Subscribe(t.Context(), &mcp.SubscribeParams{URI: "sub://a"}); err == nil || !strings.Contains(err.Error(), "not found") {
					t.Fatalf("subscribe again after the revocation: err %v, want resource not found", err)
				}
			}

			var revoked []audit.Event
			for _, ev := range auditEvents(t, tg, logPath) {
				if ev.Method == "resources/subscribe" && ev.Decision == audit.Deny && strings.Contains(ev.Reason, "revoked by a policy reload") {
					revoked = append(revoked, ev)
				}
			}
			if len(revoked) != 1 || revoked[0].Name != "sub://a" || revoked[0].Principal != "alice" || revoked[0].Upstream != "s" ||
				revoked[0].Stage != audit.StagePolicy || revoked[0].Outcome != audit.OutcomeDenied || revoked[0].AuthMethod != "api_key" {
				t.Fatalf("audit records of the revocation = %+v, want one for alice's sub://a on upstream s", revoked)
			}
			// A legacy session has an id to name; a 2026-07-28 listen
			// stream has none.
			if (version == config.ProtocolLegacy) != (revoked[0].Session != "") {
				t.Errorf("revocation record's session %q, for a %s client", revoked[0].Session, version)
			}
		})
	}
}

// TestUpdatesFollowThePolicyInForce: an update is decided when it is sent,
// not only when its subscription was made. A policy put in force without
// the reload's revocation pass (as for a subscription decided under the old
// policy while the reload ran) still keeps the updates from the session,
// and they flow again once the policy allows them.
func TestUpdatesFollowThePolicyInForce(t *testing.T) {
	tg, _ := newSubscriptionGateway(t, nil, nil)
	alice := connectSubscriber(t, tg, tg.keyA, config.ProtocolLegacy)
	alice.subscribe(t, "sub://a")
	touch(t, tg, tg.keyA, "sub://a")
	alice.expectUpdate(t, "alice", "sub://a")

	allowed := tg.authz.policy.Load()
	denying, err := policy.Compile(config.Policy{Rules: []config.PolicyRule{
		{Name: "touch-only", Principals: []string{"alice"}, Allow: &config.PolicyTargets{Tools: []string{"touch"}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	tg.authz.policy.Store(denying)
	touch(t, tg, tg.keyA, "sub://a")
	alice.expectNoUpdate(t, "alice, of a resource the policy in force hides,", 500*time.Millisecond)

	tg.authz.policy.Store(allowed)
	touch(t, tg, tg.keyA, "sub://a")
	alice.expectUpdate(t, "alice, once the policy allows it again", "sub://a")
}

// TestPolicyReloadAnnouncesListChanges: a client keeps the tool list it was
// given; after a reload that changes what it may use, the gateway announces
// tools/list_changed, and the client's next listing shows its new view.
func TestPolicyReloadAnnouncesListChanges(t *testing.T) {
	tg, _ := newSubscriptionGateway(t, nil, func(c *config.Config) {
		c.Auth.APIKeys[0].Roles = []string{"reader"}
		c.Policy = config.Policy{Rules: []config.PolicyRule{
			{Name: "read", Roles: []string{"reader"}, Allow: &config.PolicyTargets{Resources: []string{"sub://a"}}},
		}}
	})
	cfgFile := filepath.Join(t.TempDir(), "mcpgate.yaml")
	tg.cfgPath = cfgFile

	changed := make(chan struct{}, 8)
	client := mcp.NewClient(&mcp.Implementation{Name: "lister", Version: "0"}, &mcp.ClientOptions{
		ToolListChangedHandler: func(context.Context, *mcp.ToolListChangedRequest) {
			select {
			case changed <- struct{}{}:
			default:
			}
		},
	})
	cs, err := client.Connect(t.Context(), &mcp.StreamableClientTransport{Endpoint: tg.URL, HTTPClient: &http.Client{Transport: bearer(tg.keyA)}},
		&mcp.ClientSessionOptions{ProtocolVersion: config.ProtocolLegacy})
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	tools := func() []string {
		t.Helper()
		res, err := cs.ListTools(t.Context(), nil)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, tool := range res.Tools {
			names = append(names, tool.Name)
		}
		return names
	}
	waitFor(t, "the upstream's listing", func() bool { return tg.catalog.Has("tool", "touch") })
	if got := tools(); len(got) != 0 {
		t.Fatalf("before the reload alice lists %v, want nothing", got)
	}
	// The catalog's first listing announced itself too (debounced by the
	// SDK): let that pass before the reload.
	time.Sleep(200 * time.Millisecond)
	for len(changed) > 0 {
		<-changed
	}

	yaml := fmt.Sprintf("auth: {insecure_disable_auth: true}\nupstreams:\n  t: {command: [%q, testserver], insecure_no_sandbox: true}\npolicy:\n  rules:\n    - {name: touch, roles: [reader], allow: {tools: [touch]}}\n", os.Args[0])
	if err := os.WriteFile(cfgFile, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := tg.ReloadPolicy(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
	case <-time.After(10 * time.Second):
		t.Fatal("no tools/list_changed after a reload that changed alice's tools")
	}
	if got := tools(); len(got) != 1 || got[0] != "touch" {
		t.Fatalf("after the reload alice lists %v, want [touch]", got)
	}
}
