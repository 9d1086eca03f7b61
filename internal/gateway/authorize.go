package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpgate/mcpgate/internal/audit"
	"github.com/mcpgate/mcpgate/internal/authn"
	"github.com/mcpgate/mcpgate/internal/config"
	"github.com/mcpgate/mcpgate/internal/policy"
	"github.com/mcpgate/mcpgate/internal/telemetry"
	"github.com/mcpgate/mcpgate/internal/upstream"
)

// authorizer puts the policy between the client and the catalog: every
// request that names a tool, prompt or resource is decided before a handler
// runs, and every list is filtered to what the principal may use. A denied
// request is answered exactly as a request for something that does not
// exist, so probing reveals nothing; the audit log and the metrics, not the
// client, learn that it was a denial and by which rule.
type authorizer struct {
	policy       atomic.Pointer[policy.Policy]
	exists       func(kind, name string) bool // the catalog serves it
	validate     func(tool string, arguments any) error
	authDisabled bool
	audit        Auditor // nil: auditing off
	// calls links a request to its audited call (see callHeader);
	// upstreamOf names the upstream serving a tool, prompt or resource.
	calls      *calls
	upstreamOf func(kind, name string) string
	logger     *slog.Logger
	metrics    *telemetry.Metrics
}

func newAuthorizer(p *policy.Policy, c *upstream.Catalog, authDisabled bool, logger *slog.Logger, metrics *telemetry.Metrics) *authorizer {
	a := &authorizer{exists: c.Has, validate: c.ValidateInstance, authDisabled: authDisabled, logger: logger, metrics: metrics,
		calls: &calls{}, upstreamOf: c.UpstreamOf}
	a.policy.Store(p)
	return a
}

// subject is the policy's view of the request's principal, which the front
// authenticated and bindSessions handed to the SDK. ok is false when an
// authenticated gateway has no principal for the request: then nothing is
// allowed.
func (a *authorizer) subject(req mcp.Request) (s policy.Subject, ok bool) {
	var info *auth.TokenInfo
	if extra := req.GetExtra(); extra != nil {
		info = extra.TokenInfo
	}
	return a.subjectOf(info)
}

// subjectOf is subject for the token info bindSessions handed the SDK.
func (a *authorizer) subjectOf(info *auth.TokenInfo) (s policy.Subject, ok bool) {
	if p := principalOf(info); p != nil {
		return policy.Subject{ID: p.ID, Roles: p.Roles, Scopes: p.Scopes, Authenticated: true}, true
	}
	return policy.Subject{ID: "anonymous"}, a.authDisabled
}

// principalOf is the principal the front authenticated, from the token
// info bindSessions handed the SDK; nil if none.
func principalOf(info *auth.TokenInfo) *authn.Principal {
	if info == nil {
		return nil
	}
	p, _ := info.Extra[principalKey].(*authn.Principal)
	return p
}

// mayRead is the catalog's Options.MayRead: whether the policy in force
// lets the principal of a subscription's token read uri.
func (a *authorizer) mayRead(by *auth.TokenInfo, uri string) bool {
	subject, ok := a.subjectOf(by)
	return a.decide(a.policy.Load(), subject, ok, policy.Request{Kind: policy.Resource, Name: uri}).Allow
}

// revokeSubscriptions ends the resource subscriptions the policy in force
// no longer allows (see Catalog.RevokeSubscriptions), and logs and audits
// each: a policy record of method resources/subscribe, decision deny.
func (g *Gateway) revokeSubscriptions(ctx context.Context) {
	a := g.authz
	pol := a.policy.Load()
	for _, r := range g.catalog.RevokeSubscriptions() {
		s, ok := a.subjectOf(r.By)
		target := policy.Request{Kind: policy.Resource, Name: r.URI}
		d := a.decide(pol, s, ok, target)
		a.metrics.PolicyDecision(false)
		a.logger.Warn("resource subscription revoked by a policy reload", "principal", s.ID, "session", r.Session.ID(), "uri", r.URI, "reason", d.Reason)
		if a.audit == nil {
			continue
		}
		ev := audit.Event{
			Time: time.Now().UTC(), Call: audit.NewCallID(), Stage: audit.StagePolicy,
			Principal: s.ID, Roles: s.Roles, Scopes: s.Scopes, Session: r.Session.ID(),
			Method: "resources/subscribe", Name: r.URI, Upstream: a.upstreamOf(string(target.Kind), r.URI),
			Decision: audit.Deny, Rule: d.Rule, Reason: "subscription revoked by a policy reload: " + d.Reason,
			Outcome: audit.OutcomeDenied,
		}
		if p := principalOf(r.By); p != nil {
			ev.AuthMethod = string(p.Method)
		}
		if err := a.audit.Append(ctx, ev); err != nil {
			a.logger.Error("audit record of a revoked subscription not written", "error", err)
		}
	}
}

// middleware decides requests and filters lists. The policy is loaded once
// per request: a reload swaps it atomically, and a call keeps the decision
// it started with.
func (a *authorizer) middleware(next mcp.MethodHandler) mcp.MethodHandler {
	return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
		pol := a.policy.Load()
		subject, ok := a.subject(req)
		call := a.calls.of(req) // nil: not audited
		switch method {
		case "tools/list", "prompts/list", "resources/list", "resources/templates/list":
			res, err := next(ctx, method, req)
			call.served("", "", res, err)
			if err != nil || !ok {
				return filterList(res, func(policy.Kind, string) bool { return false }), err
			}
			return filterList(res, func(kind policy.Kind, name string) bool { return pol.Visible(subject, kind, name) }), nil
		}
		if listen, isListen := req.GetParams().(*mcp.SubscriptionsListenParams); isListen && listen.Notifications != nil {
			// A 2026-07-28 listen stream subscribes to every URI it lists
			// (the SDK calls the subscribe handler itself, past this
			// middleware): each is decided as a resources/subscribe would
			// be, and one the principal may not read refuses the stream.
			for _, uri := range listen.Notifications.ResourceSubscriptions {
				target := policy.Request{Kind: policy.Resource, Name: uri}
				if d := a.decide(pol, subject, ok, target); !d.Allow {
					return nil, a.refuse(ctx, req, call, method, subject, target, d, mcp.ResourceNotFoundError(uri))
				}
				a.metrics.PolicyDecision(true)
			}
		}
		target, arguments, unknown := requestTarget(req)
		if target == nil {
			res, err := next(ctx, method, req) // names nothing the policy governs
			call.served("", "", res, err)
			return res, err
		}
		d := a.decide(pol, subject, ok, *target)
		if !d.Allow {
			return nil, a.refuse(ctx, req, call, method, subject, *target, d, unknown)
		}
		a.metrics.PolicyDecision(true)
		if p, ok := req.GetParams().(*mcp.CallToolParamsRaw); ok {
			if err := a.validate(p.Name, arguments); err != nil {
				// Refused before the upstream sees it; the client learns
				// which path and keyword failed (its own input).
				answer := &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: fmt.Sprintf("invalid arguments for tool %q: %v", p.Name, err)}
				a.deny(ctx, req, call, method, subject, *target, policy.Decision{Rule: d.Rule, Reason: err.Error()}, telemetry.RefusedSchema, answer)
				return nil, answer
			}
		}
		res, err := next(ctx, method, req)
		call.served(a.upstreamOf(string(target.Kind), target.Name), d.Rule, res, err)
		return res, err
	}
}

// decide is the policy's decision for subject; without a principal (known
// is false) nothing is allowed.
func (a *authorizer) decide(pol *policy.Policy, subject policy.Subject, known bool, target policy.Request) policy.Decision {
	if !known {
		return policy.Decision{Reason: "no principal for the request"}
	}
	return pol.Decide(subject, target)
}

// refuse answers a request the policy does not allow with unknown, the
// error for a target that does not exist. Something that does not exist is
// not a denial: the client gets the same answer, but the audit log records
// no policy decision, so the two can be told apart there.
func (a *authorizer) refuse(ctx context.Context, req mcp.Request, call *callState, method string, subject policy.Subject, target policy.Request, d policy.Decision, unknown error) error {
	if a.exists(string(target.Kind), target.Name) {
		a.metrics.PolicyDecision(false)
		a.deny(ctx, req, call, method, subject, target, d, telemetry.RefusedPolicy, unknown)
	} else {
		call.served("", "", nil, unknown)
	}
	return unknown
}

// deny logs, counts (under label) and audits a denial: by the policy, or of
// arguments that fail the tool's schema. answer is the error the client
// gets. The record is a "policy" record of the call the front recorded
// (call), written durably before the client is answered.
func (a *authorizer) deny(ctx context.Context, req mcp.Request, call *callState, method string, s policy.Subject, target policy.Request, d policy.Decision, label string, answer error) {
	a.logger.Warn("request refused", "why", label, "principal", s.ID, "method", method, "name", target.Name, "rule", d.Rule, "reason", d.Reason)
	a.metrics.Refusal(label)
	up := a.upstreamOf(string(target.Kind), target.Name)
	_, code := outcomeOf(nil, answer)
	call.denied(up, d.Rule, d.Reason, code)
	if a.audit == nil {
		return
	}
	ev := audit.Event{Time: time.Now().UTC(), Principal: s.ID, Roles: s.Roles, Scopes: s.Scopes}
	if call != nil {
		ev = call.ev // the same call: its id, principal, era, digest
	}
	ev.Stage, ev.Method, ev.Name, ev.Upstream = audit.StagePolicy, method, target.Name, up
	ev.Decision, ev.Rule, ev.Reason, ev.Outcome, ev.ErrorCode = audit.Deny, d.Rule, d.Reason, audit.OutcomeDenied, code
	if ss, ok := req.GetSession().(*mcp.ServerSession); ok && ev.Session == "" {
		ev.Session = ss.ID()
	}
	if err := a.audit.Append(ctx, ev); err != nil {
		a.logger.Error("audit record of a policy denial not written", "error", err)
	}
}

// requestTarget names what a request asks for, and the error a client gets
// when that does not exist (which is also what a denied client gets). nil
// means the request names nothing the policy governs. For tools/call it also
// returns the arguments, decoded once for both the policy and the schema
// ({} when missing).
func requestTarget(req mcp.Request) (target *policy.Request, arguments any, unknown error) {
	switch p := req.GetParams().(type) {
	case *mcp.CallToolParamsRaw:
		arguments = map[string]any{}
		var args map[string]any
		if len(p.Arguments) > 0 {
			// The strict gate has checked the body; arguments that are not
			// a JSON object leave args nil, and a condition on them fails
			// (closed), as does the schema.
			_ = json.Unmarshal(p.Arguments, &arguments)
			args, _ = arguments.(map[string]any)
		}
		return &policy.Request{Kind: policy.Tool, Name: p.Name, Args: args}, arguments,
			&jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: fmt.Sprintf("unknown tool %q", p.Name)}
	case *mcp.GetPromptParams:
		args := make(map[string]any, len(p.Arguments))
		for k, v := range p.Arguments {
			args[k] = v
		}
		return &policy.Request{Kind: policy.Prompt, Name: p.Name, Args: args}, nil,
			&jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: fmt.Sprintf("unknown prompt %q", p.Name)}
	case *mcp.ReadResourceParams:
		return &policy.Request{Kind: policy.Resource, Name: p.URI}, nil, mcp.ResourceNotFoundError(p.URI)
	case *mcp.SubscribeParams:
		return &policy.Request{Kind: policy.Resource, Name: p.URI}, nil, mcp.ResourceNotFoundError(p.URI)
	case *mcp.CompleteParams:
		if p.Ref == nil {
			return nil, nil, nil
		}
		unknown = upstream.UnknownCompletionRef(p.Ref)
		if p.Ref.Type == "ref/prompt" {
			return &policy.Request{Kind: policy.Prompt, Name: p.Ref.Name}, nil, unknown
		}
		return &policy.Request{Kind: policy.Resource, Name: p.Ref.URI}, nil, unknown
	}
	return nil, nil, nil
}

// filterList keeps the list items visible says the principal may use. The
// SDK builds each list result afresh, so it is filtered in place.
func filterList(res mcp.Result, visible func(policy.Kind, string) bool) mcp.Result {
	switch r := res.(type) {
	case *mcp.ListToolsResult:
		r.Tools = slices.DeleteFunc(r.Tools, func(t *mcp.Tool) bool { return !visible(policy.Tool, t.Name) })
	case *mcp.ListPromptsResult:
		r.Prompts = slices.DeleteFunc(r.Prompts, func(p *mcp.Prompt) bool { return !visible(policy.Prompt, p.Name) })
	case *mcp.ListResourcesResult:
		r.Resources = slices.DeleteFunc(r.Resources, func(x *mcp.Resource) bool { return !visible(policy.Resource, x.URI) })
	case *mcp.ListResourceTemplatesResult:
		r.ResourceTemplates = slices.DeleteFunc(r.ResourceTemplates, func(x *mcp.ResourceTemplate) bool {
			return !visible(policy.Resource, x.URITemplate)
		})
	}
	return res
}

// ReloadPolicy re-reads the config file and, if its policy compiles, puts it
// in force atomically. A config that fails to load or a policy that fails to
// compile is refused: the policy in force stays, and the failure is logged
// and counted. Only the policy is reloaded; other settings need a restart.
func (g *Gateway) ReloadPolicy() error {
	err := g.reloadPolicy()
	g.metrics.PolicyReload(err == nil)
	if err != nil {
		g.logger.Error("policy reload refused; the policy in force stays", "error", err, "config", g.cfg.Source)
		return err
	}
	g.logger.Info("policy reloaded", "config", g.cfg.Source)
	return nil
}

func (g *Gateway) reloadPolicy() error {
	if g.cfgPath == "" {
		return errors.New("reload policy: the embedded default config has no file to re-read")
	}
	cfg, err := config.Load(g.cfgPath)
	if err != nil {
		return fmt.Errorf("reload policy: %w", err)
	}
	p, err := policy.Compile(cfg.Policy)
	if err != nil {
		return fmt.Errorf("reload policy: %w", err)
	}
	g.authz.policy.Store(p)
	g.revokeSubscriptions(context.Background())
	// What each principal sees may have changed: a re-listing has the SDK
	// announce tools, prompts and resources list_changed, and each client
	// re-lists its own (filtered) view.
	g.catalog.Resync()
	return nil
}

// policyPollInterval is how often the config file is checked for changes.
const policyPollInterval = 2 * time.Second

// watchFiles reloads the policy when the config file changes and the tool
// lockfile when it does (their size or modification time), until ctx is
// done.
func (g *Gateway) watchFiles(ctx context.Context) {
	type watched struct {
		path   string
		reload func() error
		last   string
	}
	var files []*watched
	if g.cfgPath != "" {
		files = append(files, &watched{path: g.cfgPath, reload: g.ReloadPolicy})
	}
	if g.integrity != nil {
		files = append(files, &watched{path: g.integrity.path, reload: g.ReloadLockfile})
	}
	if len(files) == 0 {
		return
	}
	stamp := func(path string) string {
		info, err := os.Stat(path)
		if err != nil {
			return ""
		}
		return fmt.Sprint(info.Size(), info.ModTime().UnixNano())
	}
	for _, f := range files {
		f.last = stamp(f.path)
	}
	tick := time.NewTicker(policyPollInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		for _, f := range files {
			if now := stamp(f.path); now != f.last && now != "" {
				f.last = now
				f.reload() // logged and counted either way
			}
		}
	}
}
