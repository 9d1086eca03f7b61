package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// callTool forwards a tools/call to the tool name on u.
func (c *Catalog) callTool(u *Upstream, name string) mcp.ToolHandler {
	return func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		p := req.Params
		var args any
		if len(p.Arguments) > 0 {
			args = p.Arguments // forwarded byte for byte
		}
		var res *mcp.CallToolResult
		state, err := c.forward(ctx, u, req, "tools/call", name, p.RequestState, func(ctx context.Context, cs *mcp.ClientSession, meta mcp.Meta, state string) (string, error) {
			r, err := cs.CallTool(ctx, &mcp.CallToolParams{Meta: meta, Name: name, Arguments: args, InputResponses: p.InputResponses, RequestState: state})
			if err != nil {
				return "", err
			}
			// A fresh result: the SDK sets the result type for the client's era.
			res = &mcp.CallToolResult{Meta: resultMeta(r.Meta), Content: r.Content, StructuredContent: r.StructuredContent,
				IsError: r.IsError, InputRequests: r.InputRequests}
			return r.RequestState, nil
		})
		if err != nil {
			return nil, err
		}
		if err := c.checkResult(u, name, req.Params.Name, res); err != nil {
			return nil, err
		}
		res.RequestState = state
		return res, nil
	}
}

// checkResult applies the gateway's rules to a tool's result before the
// client sees it: configured secrets are redacted from its text, its
// structuredContent must match the tool's output schema, and its size must
// be within the upstream's cap. exposed is the client's name for the tool.
func (c *Catalog) checkResult(u *Upstream, name, exposed string, res *mcp.CallToolResult) error {
	if len(u.spec.Redact) > 0 {
		n := 0
		for _, content := range res.Content {
			if t, ok := content.(*mcp.TextContent); ok {
				for _, re := range u.spec.Redact {
					t.Text = re.ReplaceAllStringFunc(t.Text, func(string) string { n++; return "[REDACTED]" })
				}
			}
		}
		if n > 0 {
			u.logger.Warn("tool result redacted", "tool", name, "matches", n)
			if c.redacted != nil {
				c.redacted(u.spec.Name, name, n)
			}
		}
	}
	if res.InputRequests == nil && !res.IsError {
		c.mu.Lock()
		e := c.tools[exposed]
		c.mu.Unlock()
		if e.output != nil {
			if res.StructuredContent == nil {
				return badResult(u, name, "it declares an output schema but returned no structuredContent")
			}
			var instance any
			b, err := json.Marshal(res.StructuredContent)
			if err == nil {
				err = json.Unmarshal(b, &instance)
			}
			if err == nil {
				err = e.output.Validate(instance)
			}
			if err != nil {
				return badResult(u, name, fmt.Sprintf("its structuredContent does not match its output schema: %v", err))
			}
		}
	}
	if limit := u.spec.MaxResultBytes; limit > 0 {
		b, err := json.Marshal(res)
		if err != nil {
			return badResult(u, name, "its result does not marshal")
		}
		if int64(len(b)) > limit {
			return badResult(u, name, fmt.Sprintf("its result is %d bytes, over the cap of %d (upstreams.%s.max_result_bytes)", len(b), limit, u.spec.Name))
		}
	}
	return nil
}

// badResult is the error a client gets for a result the gateway refused.
func badResult(u *Upstream, tool, why string) error {
	u.logger.Warn("tool result refused", "tool", tool, "reason", why)
	return &jsonrpc.Error{Code: CodeBadResult, Message: fmt.Sprintf("result of tool %q of upstream %q refused: %s", tool, u.spec.Name, why)}
}

// getPrompt forwards a prompts/get to the prompt name on u.
func (c *Catalog) getPrompt(u *Upstream, name string) mcp.PromptHandler {
	return func(ctx context.Context, req *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
		p := req.Params
		var res *mcp.GetPromptResult
		state, err := c.forward(ctx, u, req, "prompts/get", name, p.RequestState, func(ctx context.Context, cs *mcp.ClientSession, meta mcp.Meta, state string) (string, error) {
			r, err := cs.GetPrompt(ctx, &mcp.GetPromptParams{Meta: meta, Name: name, Arguments: p.Arguments, InputResponses: p.InputResponses, RequestState: state})
			if err != nil {
				return "", err
			}
			res = &mcp.GetPromptResult{Meta: resultMeta(r.Meta), Description: r.Description, Messages: r.Messages, InputRequests: r.InputRequests}
			return r.RequestState, nil
		})
		if err != nil {
			return nil, err
		}
		res.RequestState = state
		return res, nil
	}
}

// readResource forwards a resources/read to u (for a listed resource or a
// template match; the URI is the upstream's own).
func (c *Catalog) readResource(u *Upstream) mcp.ResourceHandler {
	return func(ctx context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
		p := req.Params
		// A URI two upstreams' templates match is refused, not guessed.
		if owner, err := c.resolveResource(p.URI); err != nil {
			return nil, err
		} else if owner != u {
			return nil, resourceNotFound(p.URI)
		}
		var res *mcp.ReadResourceResult
		state, err := c.forward(ctx, u, req, "resources/read", p.URI, p.RequestState, func(ctx context.Context, cs *mcp.ClientSession, meta mcp.Meta, state string) (string, error) {
			r, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{Meta: meta, URI: p.URI, InputResponses: p.InputResponses, RequestState: state})
			if err != nil {
				return "", err
			}
			res = &mcp.ReadResourceResult{Meta: resultMeta(r.Meta), Contents: r.Contents, InputRequests: r.InputRequests}
			return r.RequestState, nil
		})
		if err != nil {
			return nil, err
		}
		res.RequestState = state
		return res, nil
	}
}

// complete forwards a completion/complete to the upstream serving the
// prompt or resource template it refers to.
func (c *Catalog) complete(ctx context.Context, req *mcp.CompleteRequest) (*mcp.CompleteResult, error) {
	p := req.Params
	if p == nil || p.Ref == nil {
		return nil, invalidParams("completion/complete: ref is required")
	}
	ref := *p.Ref
	var u *Upstream
	c.mu.Lock()
	switch ref.Type {
	case "ref/prompt":
		if e, ok := c.prompts[ref.Name]; ok {
			u, ref.Name = e.u, e.name
		}
	case "ref/resource":
		if t, ok := c.templates[ref.URI]; ok {
			u = t.u
		} else if e, ok := c.resources[ref.URI]; ok {
			u = e.u
		}
	}
	c.mu.Unlock()
	if u == nil {
		return nil, UnknownCompletionRef(&ref)
	}
	var res *mcp.CompleteResult
	_, err := c.forward(ctx, u, req, "completion/complete", ref.Name+ref.URI, "", func(ctx context.Context, cs *mcp.ClientSession, meta mcp.Meta, _ string) (string, error) {
		var err error
		res, err = cs.Complete(ctx, &mcp.CompleteParams{Meta: meta, Ref: &ref, Argument: p.Argument, Context: p.Context})
		return "", err
	})
	return res, err
}

// forward runs one request against the instance of u that serves the
// caller. It unseals the client's requestState into the upstream's, bounds
// the call by call_timeout (cancelling it upstream past that), relays what
// the upstream sends meanwhile, and seals the upstream's next requestState to
// this caller and this target before the client sees it.
func (c *Catalog) forward(ctx context.Context, u *Upstream, req mcp.Request, method, target, state string,
	do func(ctx context.Context, cs *mcp.ClientSession, meta mcp.Meta, state string) (string, error)) (string, error) {
	owner := c.owner(req)
	op := u.spec.Name + "\x00" + owner + "\x00" + method + "\x00" + target
	upstreamState := ""
	if state != "" {
		payload, err := c.states.Open(op, state)
		if err != nil {
			return "", invalidParams("invalid requestState: " + err.Error())
		}
		upstreamState = payload.Data["s"]
	}
	in, err := u.instanceFor(owner)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, u.spec.CallTimeout)
	defer cancel()
	cs, err := in.acquire(ctx)
	if err != nil {
		return "", err
	}
	defer in.release()

	ss, _ := req.GetSession().(*mcp.ServerSession)
	var clientToken any
	if pt, ok := req.GetParams().(interface{ GetProgressToken() any }); ok {
		clientToken = pt.GetProgressToken()
	}
	cl := &call{ctx: ctx, session: ss, cs: cs, token: clientToken}
	token := c.calls.begin(cl)
	defer c.calls.end(cl, token)

	next, err := do(ctx, cs, forwardMeta(req, token, cs), upstreamState)
	if err != nil {
		return "", c.callError(ctx, u, in, err)
	}
	if next == "" {
		return "", nil
	}
	sealedState, err := c.states.Seal(op, 0, map[string]string{"s": next})
	if err != nil {
		return "", fmt.Errorf("seal request state: %w", err)
	}
	return sealedState, nil
}

// callError decides what the client is told when a forwarded request fails.
// An upstream's own JSON-RPC error passes through; the gateway's failures
// (timeout, a connection that died mid-call) get its own codes and a message
// that names the upstream but not its internals.
func (c *Catalog) callError(ctx context.Context, u *Upstream, in *instance, err error) error {
	var rpcErr *jsonrpc.Error
	switch {
	case errors.As(err, &rpcErr):
		return rpcErr
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		in.logger.Warn("upstream call timed out; cancelled upstream", "timeout", u.spec.CallTimeout)
		return &jsonrpc.Error{Code: CodeTimeout, Message: fmt.Sprintf("upstream %q did not answer within %s; the call was cancelled", u.spec.Name, u.spec.CallTimeout)}
	case ctx.Err() != nil:
		return ctx.Err() // the client went away; nobody reads this
	}
	in.logger.Warn("upstream call failed", "error", err)
	return unavailable(u.spec.Name, "the connection failed during the call")
}

// forwardMeta is the _meta the upstream gets: the client's, minus what
// belongs to the client's own connection (its progress token, protocol
// version and client info), plus the gateway's progress token and, for an
// upstream of the stateless era, the client's capabilities, so the upstream
// asks only for input the client can give.
func forwardMeta(req mcp.Request, token string, cs *mcp.ClientSession) mcp.Meta {
	meta := mcp.Meta{}
	if params := req.GetParams(); params != nil {
		for k, v := range params.GetMeta() {
			switch k {
			case "progressToken", mcp.MetaKeyProtocolVersion, mcp.MetaKeyClientInfo, mcp.MetaKeyClientCapabilities:
				continue
			}
			meta[k] = v
		}
	}
	if token != "" {
		meta["progressToken"] = token
	}
	if isModern(cs) {
		if r, ok := req.(interface {
			ClientCapabilities() *mcp.ClientCapabilities
		}); ok {
			meta[mcp.MetaKeyClientCapabilities] = capabilitiesMeta(r.ClientCapabilities())
		}
		// Each client session's own level filters what reaches it.
		//lint:ignore SA1019 logging is deprecated in 2026-07-28 but still relayed.
		if _, ok := meta[mcp.MetaKeyLogLevel]; !ok {
			//lint:ignore SA1019 logging is deprecated in 2026-07-28 but still relayed.
			meta[mcp.MetaKeyLogLevel] = "debug"
		}
	}
	return meta
}

// capabilitiesMeta renders client capabilities as the 2026-07-28 _meta
// object. The SDK's struct always marshals a "roots" member; it is kept only
// when the client declared roots.
func capabilitiesMeta(caps *mcp.ClientCapabilities) map[string]any {
	out := map[string]any{}
	if caps == nil {
		return out
	}
	b, err := json.Marshal(caps)
	if err != nil {
		return out
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return map[string]any{}
	}
	delete(out, "roots")
	if declared, listChanged := rootsDeclared(caps); declared {
		out["roots"] = map[string]any{"listChanged": listChanged}
	}
	return out
}

// resultMeta is the _meta of an upstream's result as the client gets it:
// the upstream's serverInfo is its own business (the client's server is
// mcpgate), the rest passes.
func resultMeta(m mcp.Meta) mcp.Meta {
	if _, ok := m[mcp.MetaKeyServerInfo]; !ok {
		return m
	}
	out := make(mcp.Meta, len(m))
	for k, v := range m {
		if k != mcp.MetaKeyServerInfo {
			out[k] = v
		}
	}
	return out
}

// UnknownCompletionRef is the error for a completion that refers to no
// prompt or resource template of the catalog. The policy answers a denied
// completion with it too, so the two cannot be told apart.
func UnknownCompletionRef(ref *mcp.CompleteReference) error {
	return invalidParams(fmt.Sprintf("completion/complete: unknown %s %q", ref.Type, ref.Name+ref.URI))
}

func invalidParams(msg string) error {
	return &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: msg}
}

func resourceNotFound(uri string) error {
	return mcp.ResourceNotFoundError(uri)
}

// subscribe forwards a client's first subscription to a resource upstream;
// later ones are counted. The SDK remembers which client sessions asked and
// tells only them of updates.
func (c *Catalog) subscribe(ctx context.Context, req *mcp.SubscribeRequest) error {
	uri := req.Params.URI
	u, err := c.resolveResource(uri)
	if err != nil {
		return err
	}
	if u.spec.PerPrincipal {
		return invalidParams(fmt.Sprintf("resources/subscribe: upstream %q runs one instance per principal and takes no subscriptions", u.spec.Name))
	}
	u.mu.Lock()
	u.subs[uri]++
	first := u.subs[uri] == 1
	u.mu.Unlock()
	if !first {
		return nil
	}
	cs := u.catalogInstance().current()
	if cs == nil {
		return nil // subscribed when it connects
	}
	u.subscribeUpstream(cs, uri)
	return nil
}

func (c *Catalog) unsubscribe(ctx context.Context, req *mcp.UnsubscribeRequest) error {
	uri := req.Params.URI
	u, err := c.resolveResource(uri)
	if err != nil {
		return err
	}
	u.mu.Lock()
	last := u.subs[uri] == 1
	if u.subs[uri] > 0 {
		u.subs[uri]--
	}
	if u.subs[uri] == 0 {
		delete(u.subs, uri)
	}
	u.mu.Unlock()
	if cs := u.catalogInstance().current(); last && cs != nil {
		if err := cs.Unsubscribe(ctx, &mcp.UnsubscribeParams{URI: uri}); err != nil {
			u.logger.Debug("unsubscribe upstream", "uri", uri, "error", err)
		}
	}
	return nil
}

// subscribeUpstream subscribes cs to uri. In the stateless era a
// subscription is a long-lived listen stream that the SDK's Subscribe holds
// open until Unsubscribe or the session ends, so it runs in the upstream's
// background.
func (u *Upstream) subscribeUpstream(cs *mcp.ClientSession, uri string) {
	subscribe := func() {
		if err := cs.Subscribe(u.ctx, &mcp.SubscribeParams{URI: uri}); err != nil && u.ctx.Err() == nil {
			u.logger.Debug("upstream subscription ended", "uri", uri, "error", err)
		}
	}
	if isModern(cs) {
		u.wg.Go(subscribe)
		return
	}
	subscribe()
}
