package upstream

import (
	"context"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestAttribution: a message without a request reference goes to a call only
// when every call in flight on that upstream connection is one client
// session's; with two sessions' calls in flight it goes to neither.
func TestAttribution(t *testing.T) {
	cl := newCalls()
	upstreamA, upstreamB := &mcp.ClientSession{}, &mcp.ClientSession{}
	alice, bob := &mcp.ServerSession{}, &mcp.ServerSession{}
	ctx := context.Background()

	if cl.attribute(upstreamA) != nil {
		t.Fatal("attributed with no call in flight")
	}
	a1 := newCall(ctx, alice, upstreamA, nil)
	cl.begin(a1)
	a2 := newCall(ctx, alice, upstreamA, nil)
	cl.begin(a2)
	if got := cl.attribute(upstreamA); got == nil || got.session != alice {
		t.Fatalf("two calls of one session: attributed to %v, want alice's", got)
	}
	b1 := newCall(ctx, bob, upstreamA, nil)
	tokB := cl.begin(b1)
	if got := cl.attribute(upstreamA); got != nil {
		t.Fatal("calls of two sessions in flight: attributed anyway")
	}
	if got := cl.attribute(upstreamB); got != nil {
		t.Fatal("attributed on a connection that carries no call")
	}
	cl.end(b1, tokB)
	if got := cl.attribute(upstreamA); got == nil || got.session != alice {
		t.Fatalf("after bob's call ended: attributed to %v, want alice's", got)
	}
}

// TestProgressTokens: the upstream gets a token of the gateway's, which maps
// back to the call only from the connection that carries it.
func TestProgressTokens(t *testing.T) {
	cl := newCalls()
	upstreamA, upstreamB := &mcp.ClientSession{}, &mcp.ClientSession{}
	c := newCall(context.Background(), &mcp.ServerSession{}, upstreamA, "client-token")
	tok := cl.begin(c)
	if tok == "" || tok == "client-token" {
		t.Fatalf("upstream token = %q, want one of the gateway's own", tok)
	}
	if cl.byProgressToken(upstreamA, tok) != c {
		t.Fatal("token did not map back to its call")
	}
	if cl.byProgressToken(upstreamB, tok) != nil {
		t.Fatal("another upstream's connection could aim progress at the call")
	}
	if cl.byProgressToken(upstreamA, "client-token") != nil {
		t.Fatal("the client's own token was accepted from the upstream")
	}
	cl.end(c, tok)
	if cl.byProgressToken(upstreamA, tok) != nil {
		t.Fatal("token still valid after the call ended")
	}
}
