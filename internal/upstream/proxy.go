package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

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
		out, err := c.forward(ctx, u, req, "tools/call", name, p.RequestState, func(ctx context.Context, cs *mcp.ClientSession, meta mcp.Meta, state string) (mcp.Result, string, error) {
			r, err := cs.CallTool(ctx, &mcp.CallToolParams{Meta: meta, Name: name, Arguments: args, InputResponses: p.InputResponses, RequestState: state})
			if err != nil {
				return nil, "", err
			}
			// A fresh result: the SDK sets the result type for the client's era.
			return &mcp.CallToolResult{Meta: resultMeta(r.Meta), Content: r.Content, StructuredContent: r.StructuredContent,
				IsError: r.IsError, InputRequests: r.InputRequests}, r.RequestState, nil
		})
		if err != nil {
			return nil, err
		}
		if out.inputs != nil {
			return &mcp.CallToolResult{InputRequests: out.inputs, RequestState: out.state}, nil
		}
		res := out.res.(*mcp.CallToolResult)
		if err := c.checkResult(u, name, req.Params.Name, res); err != nil {
			return nil, err
		}
		res.RequestState = out.state
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
	if limit := u.spec.MaxResultBytes; limit > 0 && !textWithin(res, limit) {
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

// textWithin reports, without marshaling it, whether res is a result of
// plain text contents alone whose JSON cannot exceed limit bytes: at most
// 6 bytes per byte of text (the longest escape, \u00XX, or \ufffd for an
// invalid byte) and a generous allowance for the fixed parts. When it
// says no, the result is marshaled and measured exactly. Most results are
// small text, and marshaling each of them only to measure it cost 2% of
// the gateway's CPU.
func textWithin(res *mcp.CallToolResult, limit int64) bool {
	if len(res.Meta) > 0 || res.StructuredContent != nil || res.InputRequests != nil {
		return false
	}
	const fixed, perContent, perByte = 64, 32, 6
	size := int64(fixed)
	for _, content := range res.Content {
		t, ok := content.(*mcp.TextContent)
		if !ok || t.Meta != nil || t.Annotations != nil {
			return false
		}
		size += perContent + perByte*int64(len(t.Text))
		if size > limit {
			return false
		}
	}
	return true
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
		out, err := c.forward(ctx, u, req, "prompts/get", name, p.RequestState, func(ctx context.Context, cs *mcp.ClientSession, meta mcp.Meta, state string) (mcp.Result, string, error) {
			r, err := cs.GetPrompt(ctx, &mcp.GetPromptParams{Meta: meta, Name: name, Arguments: p.Arguments, InputResponses: p.InputResponses, RequestState: state})
			if err != nil {
				return nil, "", err
			}
			return &mcp.GetPromptResult{Meta: resultMeta(r.Meta), Description: r.Description, Messages: r.Messages, InputRequests: r.InputRequests}, r.RequestState, nil
		})
		if err != nil {
			return nil, err
		}
		if out.inputs != nil {
			return &mcp.GetPromptResult{InputRequests: out.inputs, RequestState: out.state}, nil
		}
		res := out.res.(*mcp.GetPromptResult)
		res.RequestState = out.state
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
		out, err := c.forward(ctx, u, req, "resources/read", p.URI, p.RequestState, func(ctx context.Context, cs *mcp.ClientSession, meta mcp.Meta, state string) (mcp.Result, string, error) {
			r, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{Meta: meta, URI: p.URI, InputResponses: p.InputResponses, RequestState: state})
			if err != nil {
				return nil, "", err
			}
			return &mcp.ReadResourceResult{Meta: resultMeta(r.Meta), Contents: r.Contents, InputRequests: r.InputRequests}, r.RequestState, nil
		})
		if err != nil {
			return nil, err
		}
		if out.inputs != nil {
			return &mcp.ReadResourceResult{InputRequests: out.inputs, RequestState: out.state}, nil
		}
		res := out.res.(*mcp.ReadResourceResult)
		res.RequestState = out.state
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
	out, err := c.forward(ctx, u, req, "completion/complete", ref.Name+ref.URI, "", func(ctx context.Context, cs *mcp.ClientSession, meta mcp.Meta, _ string) (mcp.Result, string, error) {
		res, err := cs.Complete(ctx, &mcp.CompleteParams{Meta: meta, Ref: &ref, Argument: p.Argument, Context: p.Context})
		return res, "", err
	})
	if err != nil {
		return nil, err
	}
	return out.res.(*mcp.CompleteResult), nil
}

// outcome is what a forwarded request comes to: the upstream's result, or
// the gateway's own input-required result, and the requestState the client
// gets with it.
type outcome struct {
	res    mcp.Result          // nil when inputs is set
	inputs mcp.InputRequestMap // the upstream's requests for the client's input
	state  string              // sealed; "" for none
}

// forwardFunc makes one request on an upstream session and returns its
// result and the upstream's requestState.
type forwardFunc func(ctx context.Context, cs *mcp.ClientSession, meta mcp.Meta, state string) (mcp.Result, string, error)

// forward runs one request against the instance of u that serves the
// caller. It unseals the client's requestState into the upstream's, bounds
// the call by call_timeout (cancelling it upstream past that), relays what
// the upstream sends meanwhile, and seals the upstream's next requestState to
// this caller and this target before the client sees it. A modern client's
// call on a legacy upstream runs as a flight (see pending.go); a requestState
// that names one resumes it.
func (c *Catalog) forward(ctx context.Context, u *Upstream, req mcp.Request, method, target, state string, do forwardFunc) (outcome, error) {
	owner := c.owner(req)
	op := u.spec.Name + "\x00" + owner + "\x00" + method + "\x00" + target
	upstreamState := ""
	if state != "" {
		payload, err := c.states.Open(op, state)
		if err != nil {
			return outcome{}, invalidParams("invalid requestState: " + err.Error())
		}
		if id, ok := payload.Data["p"]; ok {
			return c.resume(ctx, u, req, op, id)
		}
		upstreamState = payload.Data["s"]
	}
	in, err := u.instanceFor(owner)
	if err != nil {
		return outcome{}, err
	}
	timeout := u.spec.callTimeout(method, target)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cs, err := in.acquire(ctx)
	if err != nil {
		return outcome{}, err
	}
	if flightMethods[method] && !isModern(cs) && clientIsModern(req) {
		return c.fly(ctx, u, in, cs, req, method, target, owner, op, timeout, do)
	}
	defer in.release()

	ss, _ := req.GetSession().(*mcp.ServerSession)
	cl := newCall(ctx, ss, cs, progressToken(req))
	token := c.calls.begin(cl)
	defer c.calls.end(cl, token)

	var res mcp.Result
	var next string
	err = c.observeCall(ctx, req, u, method, target, func(ctx context.Context) (err error) {
		res, next, err = do(ctx, cs, forwardMeta(req, token, cs), upstreamState)
		return err
	})
	if err != nil {
		return outcome{}, c.callError(ctx, u, in, timeout, err)
	}
	if next == "" {
		return outcome{res: res}, nil
	}
	sealedState, err := c.states.Seal(op, 0, map[string]string{"s": next})
	if err != nil {
		return outcome{}, fmt.Errorf("seal request state: %w", err)
	}
	return outcome{res: res, state: sealedState}, nil
}

// fly starts a modern client's call on a legacy upstream as a flight the
// catalog owns, and waits for its first outcome on the client's behalf. It
// takes over the instance acquired for the call (ctx carries the call's
// deadline).
func (c *Catalog) fly(ctx context.Context, u *Upstream, in *instance, cs *mcp.ClientSession, req mcp.Request, method, target, owner, op string, timeout time.Duration, do forwardFunc) (outcome, error) {
	deadline, _ := ctx.Deadline()
	// The flight outlives this request: it keeps the request's values (the
	// trace span) but not its cancellation, which round watches instead.
	fctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), deadline)
	stopOnClose := context.AfterFunc(c.runCtx(), cancel)
	var caps *mcp.ClientCapabilities
	if r, ok := req.(interface {
		ClientCapabilities() *mcp.ClientCapabilities
	}); ok {
		caps = r.ClientCapabilities()
	}
	ss, _ := req.GetSession().(*mcp.ServerSession)
	cl := newCall(ctx, ss, cs, progressToken(req))
	f := newFlight(newFlightID(), owner, op, caps, cl, cancel)
	cl.flight, cl.client = f, f
	// A flight started while Close waits for the others would escape it.
	c.mu.Lock()
	closing := c.closing
	if !closing {
		c.flights.Add(1)
	}
	c.mu.Unlock()
	if closing {
		stopOnClose()
		cancel()
		in.release()
		return outcome{}, unavailable(u.spec.Name, "it is shutting down")
	}
	token := c.calls.begin(cl)
	f.attach()
	go func() {
		defer c.flights.Done()
		defer stopOnClose()
		defer cancel()
		err := c.observeCall(fctx, req, u, method, target, func(ctx context.Context) (err error) {
			f.res, _, err = do(ctx, cs, forwardMeta(req, token, cs), "")
			return err
		})
		if err != nil {
			f.err = c.callError(fctx, u, in, timeout, err)
		}
		c.calls.end(cl, token)
		in.release()
		close(f.done)
		// The outcome is held for the client's next request until the
		// call's deadline.
		select {
		case <-f.collected:
		case <-fctx.Done():
		}
		c.pending.remove(f)
	}()
	return c.wait(ctx, u, f)
}

// resume continues the flight a sealed requestState names, with the
// client's answers.
func (c *Catalog) resume(ctx context.Context, u *Upstream, req mcp.Request, op, id string) (outcome, error) {
	f := c.pending.get(id)
	if f == nil || f.op != op {
		u.logger.Info("resume of a call no longer pending refused")
		return outcome{}, invalidParams(fmt.Sprintf("invalid requestState: the call it resumes is no longer pending (it ended, was cancelled, or outlived the call_timeout of upstream %q); call again without requestState", u.spec.Name))
	}
	if !f.attach() {
		return outcome{}, invalidParams("invalid requestState: the call it resumes is being resumed by another request")
	}
	if responses := inputResponses(req); responses != nil {
		if err := f.answer(responses); err != nil {
			// The state is spent: the call cannot be resumed again.
			f.detach()
			f.end()
			c.pending.remove(f)
			return outcome{}, err
		}
	}
	ss, _ := req.GetSession().(*mcp.ServerSession)
	f.call.attach(ctx, ss, progressToken(req))
	return c.wait(ctx, u, f)
}

// wait waits on behalf of one client request for the flight's outcome or
// its next requests for input, which the client gets with a requestState
// that resumes the flight.
func (c *Catalog) wait(ctx context.Context, u *Upstream, f *flight) (outcome, error) {
	defer func() {
		f.call.attach(context.Background(), nil, nil)
		f.detach()
	}()
	inputs, err := f.round(ctx)
	if err != nil {
		c.pending.remove(f)
		return outcome{}, err
	}
	if inputs == nil {
		f.take()
		c.pending.remove(f)
		return outcome{res: f.res}, f.err
	}
	if err := c.pending.add(f, u.spec.Name); err != nil {
		u.logger.Warn("call awaiting input refused: too many pending", "error", err)
		f.end()
		return outcome{}, err
	}
	state, err := c.states.Seal(f.op, 0, map[string]string{"p": f.id})
	if err != nil {
		f.cancel()
		c.pending.remove(f)
		return outcome{}, fmt.Errorf("seal request state: %w", err)
	}
	return outcome{inputs: inputs, state: state}, nil
}

// clientIsModern reports whether req comes from a client of the stateless
// era, which cannot be sent requests (its session has no initialize).
func clientIsModern(req mcp.Request) bool {
	ss, ok := req.GetSession().(*mcp.ServerSession)
	if !ok || ss == nil {
		return false
	}
	p := ss.InitializeParams()
	return p == nil || p.ProtocolVersion >= firstModernVersion
}

// inputResponses are the answers a client's retry carries.
func inputResponses(req mcp.Request) mcp.InputResponseMap {
	switch p := req.GetParams().(type) {
	case *mcp.CallToolParamsRaw:
		return p.InputResponses
	case *mcp.CallToolParams:
		return p.InputResponses
	case *mcp.GetPromptParams:
		return p.InputResponses
	case *mcp.ReadResourceParams:
		return p.InputResponses
	}
	return nil
}

// progressToken is the progress token the client sent with req, or nil.
func progressToken(req mcp.Request) any {
	if pt, ok := req.GetParams().(interface{ GetProgressToken() any }); ok {
		return pt.GetProgressToken()
	}
	return nil
}

// callError decides what the client is told when a forwarded request fails.
// An upstream's own JSON-RPC error passes through; the gateway's failures
// (timeout, a connection that died mid-call) get its own codes and a message
// that names the upstream but not its internals.
func (c *Catalog) callError(ctx context.Context, u *Upstream, in *instance, timeout time.Duration, err error) error {
	var rpcErr *jsonrpc.Error
	switch {
	case errors.As(err, &rpcErr):
		return rpcErr
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		in.logger.Warn("upstream call timed out; cancelled upstream", "timeout", timeout)
		return &jsonrpc.Error{Code: CodeTimeout, Message: fmt.Sprintf("upstream %q did not answer within %s; the call was cancelled", u.spec.Name, timeout)}
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

// callTimeout is the deadline of one forwarded request: the tool's own
// call_timeout for tools/call if it has one, else the upstream's.
func (s Spec) callTimeout(method, target string) time.Duration {
	if d, ok := s.ToolCallTimeout[target]; ok && method == "tools/call" {
		return d
	}
	return s.CallTimeout
}
