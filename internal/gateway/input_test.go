//lint:file-ignore SA1019 sampling is deprecated in 2026-07-28 (SEP-2577); this fixture is a legacy server that still asks for it.

package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpgate/mcpgate/internal/config"
	"github.com/mcpgate/mcpgate/internal/upstream"
)

// The test server's requests for input. With LEGACY=1 it refuses
// server/discover, so the gateway falls back to initialize and talks to it in
// the 2025-11-25 era, where a server asks its client for input with requests
// of its own mid-call. Its tools:
//
//	sample  asks its client to sample "what is 2+2?" and reports the answer;
//	        if the request fails and the call is cancelled it writes the
//	        marker "sample-cancelled"
//	elicit  asks its client for a name and reports the answer
//	twice   samples, then elicits, and reports both
func addInputTools(s *mcp.Server, mark func(string)) {
	object := json.RawMessage(`{"type":"object"}`)
	sample := func(ctx context.Context, ss *mcp.ServerSession) (string, error) {
		r, err := ss.CreateMessage(ctx, &mcp.CreateMessageParams{
			Messages:  []*mcp.SamplingMessage{{Role: "user", Content: &mcp.TextContent{Text: "what is 2+2?"}}},
			MaxTokens: 16,
		})
		if err != nil {
			// The gateway's error answer to the request may arrive before
			// its cancellation of the call: give that a moment.
			select {
			case <-ctx.Done():
				mark("sample-cancelled")
			case <-time.After(5 * time.Second):
			}
			return "", err
		}
		text, _ := r.Content.(*mcp.TextContent)
		if text == nil {
			return "", fmt.Errorf("sampling answered with %T", r.Content)
		}
		return fmt.Sprintf("sampled %q by %s", text.Text, r.Model), nil
	}
	elicit := func(ctx context.Context, ss *mcp.ServerSession) (string, error) {
		r, err := ss.Elicit(ctx, &mcp.ElicitParams{
			Message:         "What is your name?",
			RequestedSchema: map[string]any{"type": "object", "properties": map[string]any{"name": map[string]any{"type": "string"}}},
		})
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("elicited %s %v", r.Action, r.Content["name"]), nil
	}
	tool := func(name string, steps ...func(context.Context, *mcp.ServerSession) (string, error)) {
		s.AddTool(&mcp.Tool{Name: name, InputSchema: object}, func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			var got []string
			for _, step := range steps {
				text, err := step(ctx, req.Session)
				if err != nil {
					return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: err.Error()}}}, nil
				}
				got = append(got, text)
			}
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: strings.Join(got, "; ")}}}, nil
		})
	}
	tool("sample", sample)
	tool("elicit", elicit)
	tool("twice", sample, elicit)
}

// legacyOnly makes s refuse server/discover, as a server of the 2025-11-25
// era does.
func legacyOnly(s *mcp.Server) {
	s.AddReceivingMiddleware(func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			if method == "server/discover" {
				return nil, &jsonrpc.Error{Code: jsonrpc.CodeMethodNotFound, Message: "method not found"}
			}
			return next(ctx, method, req)
		}
	})
}

// withLegacyTestServer runs upstream "t" in the legacy era.
func withLegacyTestServer(c *config.Config) {
	c.Upstreams["t"].Env["LEGACY"] = config.Value{Literal: "1"}
}

// inputCall is one modern tools/call of a client that declares sampling and
// elicitation, optionally a retry with answers and a requestState.
type inputCall struct {
	tool      string
	responses string // the inputResponses object, or ""
	state     string
}

func (c inputCall) body(id int) string {
	params := fmt.Sprintf(`"_meta":{"io.modelcontextprotocol/protocolVersion":%q,"io.modelcontextprotocol/clientCapabilities":{"sampling":{},"elicitation":{"form":{}}}},"name":%q,"arguments":{}`, modernVersion, c.tool)
	if c.responses != "" {
		params += `,"inputResponses":` + c.responses
	}
	if c.state != "" {
		params += `,"requestState":` + fmt.Sprintf("%q", c.state)
	}
	return fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{%s}}`, id, params)
}

// inputResult is what the tests read of a tools/call result.
type inputResult struct {
	ResultType    string `json:"resultType"`
	InputRequests map[string]struct {
		Method string          `json:"method"`
		Params json.RawMessage `json:"params"`
	} `json:"inputRequests"`
	RequestState string `json:"requestState"`
	Content      []struct {
		Text string `json:"text"`
	} `json:"content"`
	IsError bool `json:"isError"`
}

// do sends the call as key and returns the JSON-RPC error or the result.
func (c inputCall) do(t *testing.T, tg *testGateway, key string) (*inputResult, *rpcError) {
	t.Helper()
	resp, b := tg.post(t, key, c.body(7), modernHeaders("tools/call", c.tool))
	r := decodeRPC(t, b)
	if r.Error != nil {
		return nil, &r
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: status %d: %s", c.tool, resp.StatusCode, b)
	}
	var res inputResult
	if err := json.Unmarshal(r.Result, &res); err != nil {
		t.Fatalf("%s: result %s: %v", c.tool, r.Result, err)
	}
	return &res, nil
}

// mustAsk calls and wants an input-required result with one request of
// method; it returns the request's id, its params and the requestState.
func (c inputCall) mustAsk(t *testing.T, tg *testGateway, key, method string) (id string, params json.RawMessage, state string) {
	t.Helper()
	res, rpcErr := c.do(t, tg, key)
	if rpcErr != nil {
		t.Fatalf("%s: error %+v, want an input-required result", c.tool, rpcErr.Error)
	}
	if res.ResultType != "input_required" || len(res.InputRequests) != 1 || res.RequestState == "" {
		t.Fatalf("%s: %+v, want input_required with one input request and a requestState", c.tool, res)
	}
	for id, r := range res.InputRequests {
		if r.Method != method {
			t.Fatalf("%s: input request %s is %s, want %s", c.tool, id, r.Method, method)
		}
		return id, r.Params, res.RequestState
	}
	panic("unreachable")
}

// mustComplete calls and wants a complete result whose text is want.
func (c inputCall) mustComplete(t *testing.T, tg *testGateway, key, want string) {
	t.Helper()
	res, rpcErr := c.do(t, tg, key)
	if rpcErr != nil {
		t.Fatalf("%s: error %+v, want the result", c.tool, rpcErr.Error)
	}
	if res.ResultType != "complete" || res.IsError || len(res.Content) != 1 || res.Content[0].Text != want {
		t.Fatalf("%s: %+v, want complete with text %q", c.tool, res, want)
	}
}

// mustFail calls and wants a JSON-RPC error of code whose message contains
// every one of want.
func (c inputCall) mustFail(t *testing.T, tg *testGateway, key string, code int, want ...string) {
	t.Helper()
	res, rpcErr := c.do(t, tg, key)
	if rpcErr == nil {
		t.Fatalf("%s: %+v, want error %d", c.tool, res, code)
	}
	if rpcErr.Error.Code != code {
		t.Fatalf("%s: error %+v, want code %d", c.tool, rpcErr.Error, code)
	}
	for _, w := range want {
		if !strings.Contains(rpcErr.Error.Message, w) {
			t.Fatalf("%s: error %q, want it to say %q", c.tool, rpcErr.Error.Message, w)
		}
	}
}

func samplingAnswer(id, text string) string {
	return fmt.Sprintf(`{%q:{"role":"assistant","content":{"type":"text","text":%q},"model":"test-llm"}}`, id, text)
}

func elicitationAnswer(id, name string) string {
	return fmt.Sprintf(`{%q:{"action":"accept","content":{"name":%q}}}`, id, name)
}

// TestLegacyUpstreamInputForModernClient: a legacy upstream's requests for
// input in the middle of a modern client's call reach that client as
// input-required results, and its answers reach the upstream's requests.
func TestLegacyUpstreamInputForModernClient(t *testing.T) {
	tg := newTestGateway(t, withLegacyTestServer)
	cases := []struct {
		name   string
		tool   string
		rounds []struct{ method, answer string } // answer: %s is the request id
		want   string
	}{
		{"sampling", "sample", []struct{ method, answer string }{{"sampling/createMessage", "4"}}, `sampled "4" by test-llm`},
		{"elicitation", "elicit", []struct{ method, answer string }{{"elicitation/create", "alice"}}, "elicited accept alice"},
		{"two rounds", "twice", []struct{ method, answer string }{{"sampling/createMessage", "four"}, {"elicitation/create", "bob"}},
			`sampled "four" by test-llm; elicited accept bob`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			call := inputCall{tool: tc.tool}
			var used []string
			for i, round := range tc.rounds {
				id, params, state := call.mustAsk(t, tg, tg.keyA, round.method)
				if round.method == "sampling/createMessage" && !strings.Contains(string(params), "what is 2+2?") {
					t.Fatalf("round %d: the sampling request lost the upstream's message: %s", i, params)
				}
				if round.method == "elicitation/create" && !strings.Contains(string(params), "What is your name?") {
					t.Fatalf("round %d: the elicitation request lost the upstream's message: %s", i, params)
				}
				answer := samplingAnswer(id, round.answer)
				if round.method == "elicitation/create" {
					answer = elicitationAnswer(id, round.answer)
				}
				call = inputCall{tool: tc.tool, responses: answer, state: state}
				used = append(used, state)
				if i < len(tc.rounds)-1 {
					continue
				}
				call.mustComplete(t, tg, tg.keyA, tc.want)
			}
			// A state is single use: replaying one is refused, whatever it
			// carries.
			for _, state := range used {
				inputCall{tool: tc.tool, responses: `{}`, state: state}.mustFail(t, tg, tg.keyA, jsonrpc.CodeInvalidParams, "invalid requestState", "already used")
			}
		})
	}
}

// TestLegacyUpstreamInputIsolation: a state minted for alice's pending call
// does nothing for bob (refused, and neither spent nor answered: alice then
// completes her own call with her answer), and a state for one tool does not
// resume a call of another.
func TestLegacyUpstreamInputIsolation(t *testing.T) {
	tg := newTestGateway(t, withLegacyTestServer)
	id, _, state := inputCall{tool: "sample"}.mustAsk(t, tg, tg.keyA, "sampling/createMessage")
	inputCall{tool: "sample", responses: samplingAnswer(id, "bob's"), state: state}.mustFail(t, tg, tg.keyB,
		jsonrpc.CodeInvalidParams, "invalid requestState", "different request")
	inputCall{tool: "elicit", responses: samplingAnswer(id, "other tool"), state: state}.mustFail(t, tg, tg.keyA,
		jsonrpc.CodeInvalidParams, "invalid requestState", "different request")
	inputCall{tool: "sample", responses: samplingAnswer(id, "alice's"), state: state}.mustComplete(t, tg, tg.keyA, `sampled "alice's" by test-llm`)
	// A forged state never reaches the pending table.
	inputCall{tool: "sample", responses: `{}`, state: state + "x"}.mustFail(t, tg, tg.keyA, jsonrpc.CodeInvalidParams, "invalid requestState")
}

// TestLegacyUpstreamInputWrongAnswer: an answer of the wrong kind is the
// client's error (-32602 naming the request), and the call it would resume
// is cancelled: its state was spent.
func TestLegacyUpstreamInputWrongAnswer(t *testing.T) {
	tg := newTestGateway(t, withLegacyTestServer)
	cancelled := awaitMarker(t.Context(), tg.markers, "sample-cancelled")
	id, _, state := inputCall{tool: "sample"}.mustAsk(t, tg, tg.keyA, "sampling/createMessage")
	inputCall{tool: "sample", responses: elicitationAnswer(id, "not a completion"), state: state}.mustFail(t, tg, tg.keyA,
		jsonrpc.CodeInvalidParams, id, "does not answer a sampling request")
	select {
	case <-cancelled:
	case <-time.After(10 * time.Second):
		t.Fatal("the upstream call was not cancelled after a wrong answer")
	}
}

// TestLegacyUpstreamInputExpiry: a call awaiting input past its call_timeout
// is cancelled upstream, and a retry with its state is told it is no longer
// pending.
func TestLegacyUpstreamInputExpiry(t *testing.T) {
	tg := newTestGateway(t, func(c *config.Config) {
		withLegacyTestServer(c)
		u := c.Upstreams["t"]
		u.CallTimeout = 1500 * time.Millisecond
		c.Upstreams["t"] = u
	})
	cancelled := awaitMarker(t.Context(), tg.markers, "sample-cancelled")
	id, _, state := inputCall{tool: "sample"}.mustAsk(t, tg, tg.keyA, "sampling/createMessage")
	select {
	case <-cancelled:
	case <-time.After(10 * time.Second):
		t.Fatal("the upstream call awaiting input was not cancelled at its call_timeout")
	}
	inputCall{tool: "sample", responses: samplingAnswer(id, "too late"), state: state}.mustFail(t, tg, tg.keyA,
		jsonrpc.CodeInvalidParams, "no longer pending", "call again without requestState")
}

// TestLegacyUpstreamInputCap: calls awaiting input are capped per principal
// (limits.per_principal.concurrent): past it the call is refused and
// cancelled; other principals are not affected, and an answered call frees
// its place.
func TestLegacyUpstreamInputCap(t *testing.T) {
	tg := newTestGateway(t, func(c *config.Config) {
		withLegacyTestServer(c)
		c.Limits.PerPrincipal.Concurrent = 1
		// A second connection: one upstream connection carries one
		// attributable call at a time.
		t2 := c.Upstreams["t"]
		ns := "t2"
		t2.Namespace = &ns
		c.Upstreams["t2"] = t2
	})
	id, _, state := inputCall{tool: "sample"}.mustAsk(t, tg, tg.keyA, "sampling/createMessage")
	inputCall{tool: "t2.sample"}.mustFail(t, tg, tg.keyA, upstream.CodeUnavailable, "calls awaiting input", "limits.per_principal.concurrent")
	_, _, bobState := inputCall{tool: "t2.sample"}.mustAsk(t, tg, tg.keyB, "sampling/createMessage")
	inputCall{tool: "sample", responses: samplingAnswer(id, "4"), state: state}.mustComplete(t, tg, tg.keyA, `sampled "4" by test-llm`)
	if bobState == "" {
		t.Fatal("bob got no state")
	}
	// Bob's pending call is cancelled by the gateway's Close (goleak checks
	// that its flight ended).
}
