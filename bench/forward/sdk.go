package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// sdkUpstream is the upstream side as mcpgate has it: a go-sdk client
// session over the child's stdio.
type sdkUpstream struct{ cs *mcp.ClientSession }

func startSDKUpstream(ctx context.Context, argv []string) (*sdkUpstream, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stderr = os.Stderr
	client := mcp.NewClient(&mcp.Implementation{Name: "forward", Version: "0"}, nil)
	cs, err := client.Connect(ctx, &mcp.CommandTransport{Command: cmd}, &mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", argv[0], err)
	}
	return &sdkUpstream{cs: cs}, nil
}

func (u *sdkUpstream) close() { _ = u.cs.Close() }

// call supports what the benchmark sends: tools/call and tools/list.
func (u *sdkUpstream) call(ctx context.Context, method string, params json.RawMessage) (message, error) {
	var (
		res any
		err error
	)
	switch method {
	case "tools/call":
		var p struct {
			Name      string          `json:"name"`
			Arguments json.RawMessage `json:"arguments"`
		}
		if err := json.Unmarshal(params, &p); err != nil {
			return message{}, fmt.Errorf("decode tools/call params: %w", err)
		}
		res, err = u.cs.CallTool(ctx, &mcp.CallToolParams{Name: p.Name, Arguments: p.Arguments})
	case "tools/list":
		res, err = u.cs.ListTools(ctx, nil)
	default:
		return message{}, fmt.Errorf("method %q is not forwarded", method)
	}
	if err != nil {
		return message{}, err
	}
	b, err := json.Marshal(res)
	if err != nil {
		return message{}, fmt.Errorf("encode result: %w", err)
	}
	return message{Result: b}, nil
}

// sdkFront is the HTTP side as mcpgate has it: the go-sdk's Streamable HTTP
// handlers (stateful on /legacy, stateless on /modern) over one server
// whose tools are the upstream's, each forwarded with its arguments raw.
func sdkFront(ctx context.Context, up caller) (http.Handler, error) {
	res, err := up.call(ctx, "tools/list", json.RawMessage(`{}`))
	if err != nil {
		return nil, fmt.Errorf("list upstream tools: %w", err)
	}
	var list mcp.ListToolsResult
	if err := json.Unmarshal(res.Result, &list); err != nil {
		return nil, fmt.Errorf("decode upstream tools: %w", err)
	}
	server := mcp.NewServer(&mcp.Implementation{Name: "forward", Version: "0"}, nil)
	for _, t := range list.Tools {
		name := t.Name
		server.AddTool(t, func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			if u, ok := up.(*sdkUpstream); ok { // SDK to SDK: the result as it is
				return u.cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: req.Params.Arguments})
			}
			params, err := json.Marshal(map[string]any{"name": name, "arguments": req.Params.Arguments})
			if err != nil {
				return nil, err
			}
			m, err := up.call(ctx, "tools/call", params)
			if err != nil {
				return nil, err
			}
			if m.Error != nil {
				return nil, errors.New(string(*m.Error))
			}
			var r mcp.CallToolResult
			if err := json.Unmarshal(m.Result, &r); err != nil {
				return nil, fmt.Errorf("decode tools/call result: %w", err)
			}
			return &r, nil
		})
	}
	getServer := func(*http.Request) *mcp.Server { return server }
	mux := http.NewServeMux()
	mux.Handle("/legacy", mcp.NewStreamableHTTPHandler(getServer, &mcp.StreamableHTTPOptions{Stateless: false}))
	mux.Handle("/modern", mcp.NewStreamableHTTPHandler(getServer, &mcp.StreamableHTTPOptions{
		Stateless:                    true,
		PropagateRequestCancellation: true,
	}))
	return mux, nil
}
