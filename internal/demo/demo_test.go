package demo

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpgate/mcpgate/internal/sealed"
)

const (
	legacyVersion = "2025-11-25"
	modernVersion = "2026-07-28"
)

var eras = []string{legacyVersion, modernVersion}

// fakeClock is a clock tests can move forward while handlers read it.
type fakeClock struct{ offset atomic.Int64 }

func (c *fakeClock) now() time.Time { return time.Now().Add(time.Duration(c.offset.Load())) }

func (c *fakeClock) advance(d time.Duration) { c.offset.Add(int64(d)) }

// connect serves d over in-memory transports and returns a client session
// speaking protocol version.
func connect(t *testing.T, d *Demo, version string, opts *mcp.ClientOptions) *mcp.ClientSession {
	t.Helper()
	ctx := t.Context()
	serverT, clientT := mcp.NewInMemoryTransports()
	ss, err := d.Server().Connect(ctx, serverT, nil)
	if err != nil {
		t.Fatalf("connect server: %v", err)
	}
	t.Cleanup(func() { _ = ss.Close() })
	client := mcp.NewClient(&mcp.Implementation{Name: "demo-test", Version: "0"}, opts)
	cs, err := client.Connect(ctx, clientT, &mcp.ClientSessionOptions{ProtocolVersion: version})
	if err != nil {
		t.Fatalf("connect client: %v", err)
	}
	t.Cleanup(func() { _ = cs.Close() })
	return cs
}

// answeringClient answers every elicitation as a user called Alice whose
// favourite colour is blue would.
func answeringClient() *mcp.ClientOptions {
	return &mcp.ClientOptions{
		ElicitationHandler: func(_ context.Context, req *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			content := map[string]any{
				"name": "Alice", "ok": true, "username": "alice", "email": "a@example.com", "context": "tests",
			}
			if strings.Contains(req.Params.Message, "color") {
				content = map[string]any{"color": "blue"}
			}
			return &mcp.ElicitResult{Action: "accept", Content: content}, nil
		},
	}
}

func callText(t *testing.T, cs *mcp.ClientSession, name string, args any) string {
	t.Helper()
	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("call %s: %v", name, err)
	}
	if res.IsError {
		t.Fatalf("call %s: tool error: %v", name, res.Content)
	}
	return firstText(t, res.Content)
}

func firstText(t *testing.T, content []mcp.Content) string {
	t.Helper()
	for _, c := range content {
		if text, ok := c.(*mcp.TextContent); ok {
			return text.Text
		}
	}
	t.Fatalf("no text content in %v", content)
	return ""
}

func TestToolsList(t *testing.T) {
	for _, era := range eras {
		t.Run(era, func(t *testing.T) {
			cs := connect(t, New(nil), era, nil)
			first, err := cs.ListTools(t.Context(), nil)
			if err != nil {
				t.Fatalf("list tools: %v", err)
			}
			var names []string
			for _, tool := range first.Tools {
				names = append(names, tool.Name)
				if tool.Description == "" || tool.InputSchema == nil {
					t.Errorf("tool %s lacks a description or input schema", tool.Name)
				}
			}
			for _, want := range []string{"echo", "test_simple_text", "test_sampling", "test_input_required_result_multi_round", "json_schema_2020_12_tool"} {
				if !slices.Contains(names, want) {
					t.Errorf("tools/list lacks %s; got %v", want, names)
				}
			}
			second, err := cs.ListTools(t.Context(), nil)
			if err != nil {
				t.Fatalf("list tools again: %v", err)
			}
			var again []string
			for _, tool := range second.Tools {
				again = append(again, tool.Name)
			}
			if !slices.Equal(names, again) {
				t.Errorf("tools/list order changed between calls:\n%v\n%v", names, again)
			}
		})
	}
}

func TestEcho(t *testing.T) {
	cs := connect(t, New(nil), modernVersion, nil)
	if got := callText(t, cs, "echo", map[string]any{"message": "hello, gateway"}); got != "hello, gateway" {
		t.Errorf("echo = %q, want %q", got, "hello, gateway")
	}
	// A missing required argument is a tool execution error the model can
	// correct, not a protocol error.
	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{}})
	if err == nil && !res.IsError {
		t.Errorf("echo without message succeeded: %v", res.Content)
	}
}

func TestContentTools(t *testing.T) {
	cs := connect(t, New(nil), modernVersion, nil)
	if got := callText(t, cs, "test_simple_text", nil); got != "This is a simple text response for testing." {
		t.Errorf("test_simple_text = %q", got)
	}

	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "test_image_content"})
	if err != nil {
		t.Fatalf("call test_image_content: %v", err)
	}
	img, ok := res.Content[0].(*mcp.ImageContent)
	if !ok || img.MIMEType != pngMIMEType || string(img.Data) != pngPixel {
		t.Errorf("test_image_content = %#v, want the PNG pixel", res.Content[0])
	}

	res, err = cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "test_error_handling"})
	if err != nil {
		t.Fatalf("call test_error_handling: %v", err)
	}
	if !res.IsError {
		t.Errorf("test_error_handling did not set isError")
	}
}

func TestResources(t *testing.T) {
	cs := connect(t, New(nil), modernVersion, nil)
	ctx := t.Context()

	list, err := cs.ListResources(ctx, nil)
	if err != nil {
		t.Fatalf("list resources: %v", err)
	}
	var uris []string
	for _, r := range list.Resources {
		uris = append(uris, r.URI)
	}
	for _, want := range []string{staticTextURI, staticBinaryURI, watchedResourceURI} {
		if !slices.Contains(uris, want) {
			t.Errorf("resources/list lacks %s; got %v", want, uris)
		}
	}

	read, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: staticTextURI})
	if err != nil {
		t.Fatalf("read %s: %v", staticTextURI, err)
	}
	if got := read.Contents[0].Text; got != "This is the content of the static text resource." {
		t.Errorf("read %s = %q", staticTextURI, got)
	}

	read, err = cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: "test://template/123/data"})
	if err != nil {
		t.Fatalf("read template: %v", err)
	}
	var data templateData
	if err := json.Unmarshal([]byte(read.Contents[0].Text), &data); err != nil || data.ID != "123" || !data.TemplateTest {
		t.Errorf("template body = %q (%v), want id 123", read.Contents[0].Text, err)
	}

	_, err = cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: "test://nonexistent"})
	var rpcErr *jsonrpc.Error
	if !errors.As(err, &rpcErr) || rpcErr.Code != jsonrpc.CodeInvalidParams {
		t.Errorf("read of unknown resource: err = %v, want code %d", err, jsonrpc.CodeInvalidParams)
	}
}

func TestPromptsAndCompletion(t *testing.T) {
	cs := connect(t, New(nil), modernVersion, nil)
	ctx := t.Context()

	prompts, err := cs.ListPrompts(ctx, nil)
	if err != nil {
		t.Fatalf("list prompts: %v", err)
	}
	if len(prompts.Prompts) < 5 {
		t.Errorf("prompts/list returned %d prompts, want at least 5", len(prompts.Prompts))
	}

	got, err := cs.GetPrompt(ctx, &mcp.GetPromptParams{
		Name:      promptWithArguments,
		Arguments: map[string]string{"arg1": "hello", "arg2": "world"},
	})
	if err != nil {
		t.Fatalf("get prompt: %v", err)
	}
	text := got.Messages[0].Content.(*mcp.TextContent).Text
	if text != "Prompt with arguments: arg1='hello', arg2='world'" {
		t.Errorf("prompt text = %q", text)
	}

	completion, err := cs.Complete(ctx, &mcp.CompleteParams{
		Ref:      &mcp.CompleteReference{Type: refPrompt, Name: promptWithArguments},
		Argument: mcp.CompleteParamsArgument{Name: "arg1", Value: "par"},
	})
	if err != nil {
		t.Fatalf("complete: %v", err)
	}
	if want := []string{"paris", "park", "party"}; !slices.Equal(completion.Completion.Values, want) {
		t.Errorf("completion = %v, want %v", completion.Completion.Values, want)
	}
}

// TestInputRequests drives the input-needing tools through both eras: the
// modern client retries with inputResponses itself; for the legacy session
// the SDK asks the client over the session and re-invokes the handler.
func TestInputRequests(t *testing.T) {
	for _, era := range eras {
		t.Run(era, func(t *testing.T) {
			cs := connect(t, New(nil), era, answeringClient())
			if got := callText(t, cs, "test_input_required_result_elicitation", nil); got != "Hello, Alice!" {
				t.Errorf("elicitation tool = %q", got)
			}
			if got := callText(t, cs, "test_elicitation", map[string]any{"message": "who are you?"}); !strings.Contains(got, "action=accept") {
				t.Errorf("test_elicitation = %q", got)
			}
			if got := callText(t, cs, "test_input_required_result_request_state", nil); !strings.HasPrefix(got, "state-ok") {
				t.Errorf("request-state tool = %q", got)
			}
			prompt, err := cs.GetPrompt(t.Context(), &mcp.GetPromptParams{Name: "test_input_required_result_prompt"})
			if err != nil {
				t.Fatalf("get input-required prompt: %v", err)
			}
			if len(prompt.Messages) == 0 {
				t.Errorf("input-required prompt returned no messages")
			}
		})
	}
}

func TestMultiRound(t *testing.T) {
	// Only a 2026-07-28 client can answer more than one round: the SDK
	// re-invokes a handler for a legacy session once only.
	cs := connect(t, New(nil), modernVersion, answeringClient())
	if got := callText(t, cs, toolMultiRound, nil); got != "Multi-round complete: Alice likes blue" {
		t.Errorf("multi-round = %q", got)
	}
}

func TestMissingCapability(t *testing.T) {
	cs := connect(t, New(nil), modernVersion, nil) // declares no sampling
	_, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "test_missing_capability"})
	var rpcErr *jsonrpc.Error
	if !errors.As(err, &rpcErr) || rpcErr.Code != mcp.CodeMissingRequiredClientCapabilities {
		t.Fatalf("err = %v, want code %d", err, mcp.CodeMissingRequiredClientCapabilities)
	}
	var data struct {
		RequiredCapabilities map[string]json.RawMessage `json:"requiredCapabilities"`
	}
	if err := json.Unmarshal(rpcErr.Data, &data); err != nil || data.RequiredCapabilities["sampling"] == nil {
		t.Errorf("error data = %s, want requiredCapabilities.sampling", rpcErr.Data)
	}
}

// TestRequestStateRejected retries test_input_required_result_tampered_state
// by hand with states that must not be accepted.
func TestRequestStateRejected(t *testing.T) {
	const tool = "test_input_required_result_tampered_state"
	confirmed := mcp.InputResponseMap{keyConfirm: &mcp.ElicitResult{Action: "accept", Content: map[string]any{"ok": true}}}

	tests := []struct {
		name string
		// state turns a freshly minted state into the one sent back.
		state func(t *testing.T, cs *mcp.ClientSession, clock *fakeClock, minted string) string
		want  error
	}{{
		name: "tampered tag",
		state: func(_ *testing.T, _ *mcp.ClientSession, _ *fakeClock, minted string) string {
			return minted + "-TAMPERED"
		},
		want: sealed.ErrForged,
	}, {
		name: "tampered payload",
		state: func(_ *testing.T, _ *mcp.ClientSession, _ *fakeClock, minted string) string {
			return "A" + minted[1:]
		},
		want: sealed.ErrForged,
	}, {
		name: "expired",
		state: func(_ *testing.T, _ *mcp.ClientSession, clock *fakeClock, minted string) string {
			clock.advance(sealed.TTL + time.Second)
			return minted
		},
		want: sealed.ErrExpired,
	}, {
		name: "replayed",
		state: func(t *testing.T, cs *mcp.ClientSession, _ *fakeClock, minted string) string {
			res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: tool, InputResponses: confirmed, RequestState: minted})
			if err != nil || res.IsError {
				t.Fatalf("first use of a valid state failed: %v %v", err, res)
			}
			return minted
		},
		want: sealed.ErrReplayed,
	}, {
		name: "other operation",
		state: func(t *testing.T, cs *mcp.ClientSession, _ *fakeClock, _ string) string {
			return mintState(t, cs, "test_input_required_result_request_state")
		},
		want: sealed.ErrOperation,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := New(nil)
			clock := &fakeClock{}
			d.states = sealed.New(stateDomain, clock.now)
			cs := connect(t, d, modernVersion, &mcp.ClientOptions{
				Capabilities:   &mcp.ClientCapabilities{Elicitation: &mcp.ElicitationCapabilities{}},
				MultiRoundTrip: &mcp.MultiRoundTripOptions{Disabled: true},
			})

			state := tt.state(t, cs, clock, mintState(t, cs, tool))
			_, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: tool, InputResponses: confirmed, RequestState: state})
			var rpcErr *jsonrpc.Error
			if !errors.As(err, &rpcErr) || rpcErr.Code != jsonrpc.CodeInvalidParams || rpcErr.Message != tt.want.Error() {
				t.Errorf("retry with %s state: err = %v, want invalid params %q", tt.name, err, tt.want)
			}
		})
	}
}

// mintState calls tool without input and returns the requestState it hands out.
func mintState(t *testing.T, cs *mcp.ClientSession, tool string) string {
	t.Helper()
	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: tool})
	if err != nil {
		t.Fatalf("call %s: %v", tool, err)
	}
	if !res.NeedsInput() || res.RequestState == "" {
		t.Fatalf("call %s: want an input-required result with requestState, got %+v", tool, res)
	}
	return res.RequestState
}

// TestRunAnnouncesWatchedUpdates subscribes a legacy session to the watched
// resource and checks that Run notifies it and returns once cancelled.
func TestRunAnnouncesWatchedUpdates(t *testing.T) {
	d := New(nil)
	d.updateInterval = 10 * time.Millisecond
	updated := make(chan string, 1)
	cs := connect(t, d, legacyVersion, &mcp.ClientOptions{
		ResourceUpdatedHandler: func(_ context.Context, req *mcp.ResourceUpdatedNotificationRequest) {
			select {
			case updated <- req.Params.URI:
			default:
			}
		},
	})
	if err := cs.Subscribe(t.Context(), &mcp.SubscribeParams{URI: watchedResourceURI}); err != nil {
		t.Fatalf("subscribe: %v", err)
	}

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		d.Run(ctx)
		close(done)
	}()
	select {
	case uri := <-updated:
		if uri != watchedResourceURI {
			t.Errorf("update for %q, want %q", uri, watchedResourceURI)
		}
	case <-time.After(5 * time.Second):
		t.Error("no resource update notification")
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancellation")
	}
}
