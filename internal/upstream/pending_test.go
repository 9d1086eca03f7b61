//lint:file-ignore SA1019 sampling and roots are deprecated in 2026-07-28 (SEP-2577); the translation of legacy upstreams' sampling requests is what is tested.

package upstream

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestFitAnswer: an answer reaches the upstream only as the type its
// request handler returns, and only for the kind of request it answers.
func TestFitAnswer(t *testing.T) {
	text := &mcp.TextContent{Text: "4"}
	tests := []struct {
		name    string
		kind    string
		answer  mcp.InputResponse
		wantErr string
	}{
		{"sampling, one block", "sampling", &mcp.CreateMessageWithToolsResult{Content: []mcp.Content{text}, Model: "m", Role: "assistant"}, ""},
		{"sampling, base type", "sampling", &mcp.CreateMessageResult{Content: text, Model: "m", Role: "assistant"}, ""},
		{"sampling, two blocks", "sampling", &mcp.CreateMessageWithToolsResult{Content: []mcp.Content{text, text}}, "exactly one content block"},
		{"sampling, no block", "sampling", &mcp.CreateMessageWithToolsResult{}, "exactly one content block"},
		{"sampling answered by elicitation", "sampling", &mcp.ElicitResult{Action: "accept"}, "does not answer a sampling request"},
		{"elicitation", "elicitation", &mcp.ElicitResult{Action: "decline"}, ""},
		{"elicitation answered by sampling", "elicitation", &mcp.CreateMessageResult{Content: text}, "does not answer a elicitation request"},
		{"elicitation answered by roots", "elicitation", &mcp.ListRootsResult{}, "does not answer"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := fitAnswer(tc.kind, tc.answer)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			switch tc.kind {
			case "sampling":
				if r, ok := got.(*mcp.CreateMessageResult); !ok || r.Content != text {
					t.Fatalf("got %#v, want a CreateMessageResult with the answer's content", got)
				}
			case "elicitation":
				if _, ok := got.(*mcp.ElicitResult); !ok {
					t.Fatalf("got %T", got)
				}
			}
		})
	}
}

// TestDeclared: the gateway asks a client only for input it declared.
func TestDeclared(t *testing.T) {
	form := &mcp.ElicitParams{Message: "name?"}
	url := &mcp.ElicitParams{Mode: "url", URL: "https://example.com", Message: "go"}
	tests := []struct {
		name string
		caps *mcp.ClientCapabilities
		kind string
		req  mcp.InputRequest
		ok   bool
	}{
		{"no capabilities", nil, "sampling", &mcp.CreateMessageParams{}, false},
		{"sampling undeclared", &mcp.ClientCapabilities{}, "sampling", &mcp.CreateMessageParams{}, false},
		{"sampling declared", &mcp.ClientCapabilities{Sampling: &mcp.SamplingCapabilities{}}, "sampling", &mcp.CreateMessageParams{}, true},
		{"elicitation undeclared", &mcp.ClientCapabilities{Sampling: &mcp.SamplingCapabilities{}}, "elicitation", form, false},
		{"elicitation {} means form", &mcp.ClientCapabilities{Elicitation: &mcp.ElicitationCapabilities{}}, "elicitation", form, true},
		{"form declared", &mcp.ClientCapabilities{Elicitation: &mcp.ElicitationCapabilities{Form: &mcp.FormElicitationCapabilities{}}}, "elicitation", form, true},
		{"form, only url declared", &mcp.ClientCapabilities{Elicitation: &mcp.ElicitationCapabilities{URL: &mcp.URLElicitationCapabilities{}}}, "elicitation", form, false},
		{"url, only form declared", &mcp.ClientCapabilities{Elicitation: &mcp.ElicitationCapabilities{Form: &mcp.FormElicitationCapabilities{}}}, "elicitation", url, false},
		{"url declared", &mcp.ClientCapabilities{Elicitation: &mcp.ElicitationCapabilities{URL: &mcp.URLElicitationCapabilities{}}}, "elicitation", url, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := declared(tc.caps, tc.kind, tc.req)
			if (err == nil) != tc.ok {
				t.Fatalf("declared = %v, want ok %v", err, tc.ok)
			}
			if err != nil && !errors.Is(err, errNotDeclared) {
				t.Fatalf("err = %v, want errNotDeclared", err)
			}
		})
	}
}

// TestPendingCallsCaps: the table refuses past its caps, per principal
// first, and a removed call frees its place.
func TestPendingCallsCaps(t *testing.T) {
	p := newPendingCalls(3, 2)
	fl := func(id, owner string) *flight { return newFlight(id, owner, "op", nil, nil, func() {}) }
	a1, a2, a3 := fl("a1", "alice"), fl("a2", "alice"), fl("a3", "alice")
	b1, b2, c1 := fl("b1", "bob"), fl("b2", "bob"), fl("c1", "carol")
	for _, f := range []*flight{a1, a2, a2, b1} { // a2 twice: added once
		if err := p.add(f, "u"); err != nil {
			t.Fatalf("add %s: %v", f.id, err)
		}
	}
	code := func(err error) int64 {
		var rpcErr *jsonrpc.Error
		if !errors.As(err, &rpcErr) {
			return 0
		}
		return rpcErr.Code
	}
	if err := p.add(a3, "u"); code(err) != CodeUnavailable || !strings.Contains(err.Error(), "per_principal") {
		t.Fatalf("alice's third: %v, want the per-principal cap", err)
	}
	if err := p.add(b2, "u"); code(err) != CodeUnavailable || !strings.Contains(err.Error(), "concurrent_total") {
		t.Fatalf("bob's second with 3 pending in all: %v, want the total cap", err)
	}
	p.remove(a1)
	p.remove(a1) // twice: no effect
	if err := p.add(c1, "u"); err != nil {
		t.Fatalf("carol after alice's was removed: %v", err)
	}
	if p.get("a1") != nil || p.get("c1") != c1 {
		t.Fatal("get does not follow add and remove")
	}
	if err := p.add(a3, "u"); err == nil {
		t.Fatal("the total cap was not kept after a removal and an add")
	}
}

// TestFlightRounds: a request for input surfaces in a round; the answer
// reaches the waiting request; an answer to nothing outstanding is ignored;
// a client that goes away cancels the call.
func TestFlightRounds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	caps := &mcp.ClientCapabilities{Sampling: &mcp.SamplingCapabilities{}}
	f := newFlight("f", "alice", "op", caps, nil, cancel)
	got := make(chan mcp.InputResponse, 1)
	go func() {
		r, err := f.ask(ctx, "sampling", &mcp.CreateMessageParams{MaxTokens: 1})
		if err != nil {
			got <- nil
			return
		}
		got <- r
	}()
	inputs, err := f.round(ctx)
	if err != nil || len(inputs) != 1 {
		t.Fatalf("round = %v, %v; want one input request", inputs, err)
	}
	var id string
	for id = range inputs {
	}
	if err := f.answer(mcp.InputResponseMap{"unknown": &mcp.ElicitResult{}}); err != nil {
		t.Fatalf("an answer to nothing outstanding: %v, want it ignored", err)
	}
	if err := f.answer(mcp.InputResponseMap{id: &mcp.ElicitResult{Action: "accept"}}); err == nil {
		t.Fatal("an elicitation answer to a sampling request was accepted")
	}
	answer := &mcp.CreateMessageResult{Content: &mcp.TextContent{Text: "x"}, Role: "assistant"}
	if err := f.answer(mcp.InputResponseMap{id: answer}); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-got:
		if r != answer {
			t.Fatalf("the upstream's request got %#v", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the answer did not reach the waiting request")
	}
	// A round whose client goes away cancels the call.
	gone, leave := context.WithCancel(context.Background())
	leave()
	if _, err := f.round(gone); err == nil || ctx.Err() == nil {
		t.Fatalf("round of a client gone = %v, call ctx %v; want both cancelled", err, ctx.Err())
	}
}
