package upstream

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/yosida95/uritemplate/v3"

	"github.com/mcpgate/mcpgate/internal/pin"
	"github.com/mcpgate/mcpgate/internal/sealed"
)

// bootTimeout bounds how long Start waits for the upstreams that start at
// boot to connect and be listed.
const bootTimeout = 60 * time.Second

// Options configure a Catalog.
type Options struct {
	// Version is mcpgate's version, reported as the server's version.
	Version string
	// Owner names the principal a request comes from: the key of
	// per-principal instances and the binding of sealed request states.
	Owner func(req mcp.Request) string
	// Logger receives the catalog's records; SDKLogger the SDK's own.
	Logger, SDKLogger *slog.Logger
	// Metrics counts upstream events; nil counts nothing.
	Metrics Metrics
	// Integrity admits the tools, prompts and resource templates upstreams
	// serve (the tool lockfile); nil admits all.
	Integrity Integrity
	// Redacted is told of every result redaction (n matches replaced);
	// nil ignores them.
	Redacted func(upstream, tool string, n int)
	// Calls measures the requests forwarded to upstreams; nil measures nothing.
	Calls CallObserver
	// MayRead decides, with the policy in force, whether a resource
	// subscription made with token by may go on receiving updates of uri:
	// it is asked at every update sent and by RevokeSubscriptions. nil
	// lets every subscription stand (the subscription itself was decided
	// when it was made).
	MayRead func(by *auth.TokenInfo, uri string) bool
	// MaxPendingCalls and MaxPendingCallsPerPrincipal cap the calls of
	// modern clients on legacy upstreams that wait for the client's input
	// (each holds an upstream call open); zero means the default.
	MaxPendingCalls, MaxPendingCallsPerPrincipal int
}

// Default caps on calls awaiting a client's input.
const (
	DefaultMaxPendingCalls             = 256
	DefaultMaxPendingCallsPerPrincipal = 8
)

// Integrity decides whether a definition an upstream serves may be
// offered. It is asked at every listing; a definition it refuses is
// quarantined: hidden and uncallable.
type Integrity interface {
	Admit(d pin.Definition) bool
	// Review sees every upstream's definitions after a listing, for the
	// checks that compare upstreams; true asks for a re-listing (its
	// verdicts changed what Admit says).
	Review(all []pin.Definition) bool
}

// Catalog is the merged view of every upstream, served by one *mcp.Server.
type Catalog struct {
	server    *mcp.Server
	upstreams []*Upstream // sorted by name
	owner     func(req mcp.Request) string
	mayRead   func(by *auth.TokenInfo, uri string) bool // Options.MayRead
	logger    *slog.Logger
	calls     *calls
	subs      subscribers // the client sessions' resource subscriptions (see subscribe.go)
	states    *sealed.Sealer
	pending   *pendingCalls
	// flights are the calls of modern clients on legacy upstreams (see
	// pending.go), which outlive the client's request; Close waits for them.
	// closing (under mu) refuses new ones once it does.
	flights sync.WaitGroup

	mu        sync.Mutex
	tools     map[string]entry // exposed name -> where it lives
	prompts   map[string]entry
	resources map[string]entry    // URI -> owner
	templates map[string]template // URI template -> owner
	conflicts []string            // what the last syncs refused, for Start
	closing   bool                // Close has begun: no new flights
	integrity Integrity
	redacted  func(upstream, tool string, n int)
	observer  CallObserver
	// defs holds what each upstream served at its last listing, admitted
	// or not: what `mcpgate pin` pins.
	defs map[*Upstream][]pin.Definition

	ctx    context.Context // the run context, set by Start
	cancel context.CancelFunc
}

// entry is one catalog item: the upstream that serves it and its own name
// (or URI) there.
type entry struct {
	u      *Upstream
	name   string
	schema *jsonschema.Resolved // a tool's compiled input schema (tightened by config)
	output *jsonschema.Resolved // a tool's compiled output schema, if it declares one
}

// template is a resource template's owner and its matcher.
type template struct {
	entry
	match *regexp.Regexp
}

// stateDomain separates the catalog's requestState tags from any other use
// of a sealing key.
const stateDomain = "mcpgate/upstream/requestState/v1"

// NewCatalog builds the catalog for specs; nothing starts until Start.
func NewCatalog(specs []Spec, opts Options) *Catalog {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	metrics := opts.Metrics
	if metrics == nil {
		metrics = noMetrics{}
	}
	c := &Catalog{
		owner:     opts.Owner,
		mayRead:   opts.MayRead,
		logger:    logger,
		calls:     newCalls(),
		states:    sealed.New(stateDomain, time.Now),
		tools:     map[string]entry{},
		prompts:   map[string]entry{},
		resources: map[string]entry{},
		templates: map[string]template{},
		integrity: opts.Integrity,
		redacted:  opts.Redacted,
		defs:      map[*Upstream][]pin.Definition{},
	}
	if c.owner == nil {
		c.owner = func(mcp.Request) string { return "" }
	}
	c.pending = newPendingCalls(cmp.Or(opts.MaxPendingCalls, DefaultMaxPendingCalls),
		cmp.Or(opts.MaxPendingCallsPerPrincipal, DefaultMaxPendingCallsPerPrincipal))
	if c.observer = opts.Calls; c.observer == nil {
		c.observer = noObserver{}
	}
	sdkLogger := opts.SDKLogger
	if sdkLogger == nil {
		sdkLogger = logger
	}
	c.server = mcp.NewServer(&mcp.Implementation{Name: "mcpgate", Title: "mcpgate MCP gateway", Version: opts.Version}, &mcp.ServerOptions{
		// Every capability is advertised up front: on-demand upstreams have
		// not been listed when a client initializes, and the SDK would
		// otherwise infer "no tools" from an empty registry.
		Capabilities: &mcp.ServerCapabilities{
			//lint:ignore SA1019 logging is deprecated in 2026-07-28 but still relayed for 2025-11-25 clients.
			Logging:     &mcp.LoggingCapabilities{},
			Tools:       &mcp.ToolCapabilities{ListChanged: true},
			Prompts:     &mcp.PromptCapabilities{ListChanged: true},
			Resources:   &mcp.ResourceCapabilities{ListChanged: true, Subscribe: true},
			Completions: &mcp.CompletionCapabilities{},
		},
		// Lists and reads are per principal (the policy filters them, and
		// per-principal upstreams answer differently): no shared caching.
		SetCacheable: func(_ context.Context, _ mcp.Request, cache *mcp.Cacheable) {
			cache.TTLMs, cache.CacheScope = 0, "private"
		},
		CompletionHandler:  c.complete,
		SubscribeHandler:   c.subscribe,
		UnsubscribeHandler: c.unsubscribe,
		Logger:             sdkLogger,
	})
	c.server.AddReceivingMiddleware(c.listOnDemand)
	c.server.AddSendingMiddleware(c.filterUpdates)
	for _, spec := range specs {
		u := &Upstream{
			spec:    spec,
			cat:     c,
			logger:  logger.With("upstream", spec.Name),
			metrics: metrics,
			resync:  make(chan struct{}, 1),
		}
		u.client = c.newClient(u)
		c.upstreams = append(c.upstreams, u)
	}
	sort.Slice(c.upstreams, func(i, j int) bool { return c.upstreams[i].spec.Name < c.upstreams[j].spec.Name })
	return c
}

// Server is the MCP server clients talk to.
func (c *Catalog) Server() *mcp.Server { return c.server }

// Start starts the upstreams and waits (bounded) until those that start at
// boot are connected and listed. Names that collide between upstreams are an
// error here: the gateway does not start with an item silently shadowed. An
// upstream that fails to start is not an error (it keeps being retried, and
// its calls fail fast meanwhile): one broken server must not keep the
// gateway from serving the others.
func (c *Catalog) Start(ctx context.Context) error {
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	c.ctx, c.cancel = runCtx, cancel
	for _, u := range c.upstreams {
		u.start(runCtx)
	}
	bootCtx, stop := context.WithTimeout(ctx, bootTimeout)
	defer stop()
	var wg sync.WaitGroup
	for _, u := range c.upstreams {
		if u.spec.OnDemand {
			continue
		}
		wg.Go(func() {
			if !u.catalogInstance().awaitUp(bootCtx) {
				u.logger.Error("upstream did not start; it is retried in the background and its calls fail until it is up")
			}
		})
	}
	wg.Wait()
	c.mu.Lock()
	conflicts := c.conflicts
	c.mu.Unlock()
	if len(conflicts) > 0 {
		c.Close()
		// Every collision is in the log; the error names the first few.
		const shown = 3
		more := ""
		if len(conflicts) > shown {
			more = fmt.Sprintf(" (and %d more name collisions; see the log; set a namespace on one of the upstreams)", len(conflicts)-shown)
			conflicts = conflicts[:shown]
		}
		return fmt.Errorf("load upstream catalog: %s%s", strings.Join(conflicts, "; "), more)
	}
	return nil
}

// Definitions returns what every upstream served at its last listing,
// admitted or quarantined, sorted by upstream, kind and name: what `mcpgate
// pin` writes to the lockfile.
func (c *Catalog) Definitions() []pin.Definition {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []pin.Definition
	for _, defs := range c.defs {
		out = append(out, defs...)
	}
	slices.SortFunc(out, func(a, b pin.Definition) int {
		return cmp.Or(cmp.Compare(a.Upstream, b.Upstream), cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Name, b.Name))
	})
	return out
}

// Unlisted names the upstreams that have not been listed yet (they did not
// start, or did not answer).
func (c *Catalog) Unlisted() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, u := range c.upstreams {
		if _, ok := c.defs[u]; !ok {
			out = append(out, u.spec.Name)
		}
	}
	return out
}

// Resync re-lists every upstream now (after the lockfile changed): what was
// quarantined and is now pinned appears, and the other way round.
func (c *Catalog) Resync() {
	for _, u := range c.upstreams {
		select {
		case u.resync <- struct{}{}:
		default: // one is pending already
		}
	}
}

// Close stops every upstream: children get their stdin closed, then
// SIGTERM, then SIGKILL; remote sessions are ended.
func (c *Catalog) Close() {
	if c.cancel == nil {
		return
	}
	c.mu.Lock()
	c.closing = true
	c.mu.Unlock()
	c.cancel()
	var wg sync.WaitGroup
	for _, u := range c.upstreams {
		wg.Go(u.stop)
	}
	wg.Wait()
	c.flights.Wait() // cancelled with the run context
	c.closeSubscribers()
}

// runCtx is the context the catalog runs under until Close.
func (c *Catalog) runCtx() context.Context {
	if c.ctx == nil {
		return context.Background()
	}
	return c.ctx
}

// listOnDemand starts on-demand upstreams before a client's first list, so
// that what they serve is in the answer.
func (c *Catalog) listOnDemand(next mcp.MethodHandler) mcp.MethodHandler {
	return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
		switch method {
		case "tools/list", "prompts/list", "resources/list", "resources/templates/list":
			for _, u := range c.upstreams {
				if u.spec.OnDemand {
					u.ensureStarted().awaitUp(ctx)
				}
			}
		}
		return next(ctx, method, req)
	}
}

// exposed is the name a client sees for name on u.
func exposed(u *Upstream, name string) string {
	if u.spec.Namespace == "" {
		return name
	}
	return u.spec.Namespace + "." + name
}

// lists is what one upstream serves.
type lists struct {
	tools     []*mcp.Tool
	prompts   []*mcp.Prompt
	resources []*mcp.Resource
	templates []*mcp.ResourceTemplate
}

// sync re-lists what u serves through cs and updates the catalog: new and
// changed items are added, vanished ones removed (the SDK tells clients the
// lists changed). An item whose name another upstream already serves is
// refused, logged and remembered as a conflict.
func (c *Catalog) sync(ctx context.Context, u *Upstream, cs *mcp.ClientSession) {
	if !c.syncLists(ctx, u, cs) {
		return
	}
	if c.integrity != nil && c.integrity.Review(c.Definitions()) {
		// The verdicts changed: this upstream is re-listed now, through
		// the session at hand (its instance may not count as up yet, and
		// a queued re-listing would then be skipped), the others through
		// their sync loops.
		c.syncLists(ctx, u, cs)
		c.Resync()
	}
}

// syncLists is sync's listing and update; false if the listing failed.
func (c *Catalog) syncLists(ctx context.Context, u *Upstream, cs *mcp.ClientSession) bool {
	l, err := fetchLists(ctx, cs)
	if err != nil {
		u.logger.Error("list upstream catalog", "error", err)
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var conflicts []string
	conflict := func(kind, name string, other *Upstream) {
		msg := fmt.Sprintf("%s %q of upstream %q collides with upstream %q", kind, name, u.spec.Name, other.spec.Name)
		conflicts = append(conflicts, msg)
		u.logger.Error("catalog item refused: name collision", "kind", kind, "name", name, "other_upstream", other.spec.Name)
	}

	var defs []pin.Definition
	// admit records d and asks the lockfile about it.
	admit := func(kind pin.Kind, name string, v any) bool {
		raw, err := json.Marshal(v)
		if err != nil {
			u.logger.Error("catalog item refused: definition does not marshal", "kind", kind, "name", name, "error", err)
			return false
		}
		d := pin.Definition{Upstream: u.spec.Name, Kind: kind, Name: name, Raw: raw}
		defs = append(defs, d)
		return c.integrity == nil || c.integrity.Admit(d)
	}

	keepTools := map[string]bool{}
	for _, t := range l.tools {
		name := exposed(u, t.Name)
		if e, ok := c.tools[name]; ok && e.u != u {
			conflict("tool", name, e.u)
			continue
		}
		if err := checkTool(name, t); err != nil {
			u.logger.Error("tool refused", "tool", t.Name, "error", err)
			continue
		}
		if !admit(pin.Tool, t.Name, t) {
			continue
		}
		input := t.InputSchema
		if tighter, ok := u.spec.Tighten[t.Name]; ok {
			// Both must pass: the upstream's schema and the operator's.
			input = map[string]any{"allOf": []any{t.InputSchema, tighter}}
		}
		schema, err := compileSchema(input)
		if err != nil {
			// Quarantined: without a schema its calls could not be
			// validated, and none goes through unvalidated.
			u.logger.Error("tool quarantined: its input schema does not compile", "tool", t.Name, "error", err)
			continue
		}
		var output *jsonschema.Resolved
		if t.OutputSchema != nil {
			if output, err = compileSchema(t.OutputSchema); err != nil {
				u.logger.Error("tool quarantined: its output schema does not compile", "tool", t.Name, "error", err)
				continue
			}
		}
		cp := *t
		cp.Name = name
		c.tools[name] = entry{u, t.Name, schema, output}
		keepTools[name] = true
		c.server.AddTool(&cp, c.callTool(u, t.Name))
	}
	c.server.RemoveTools(removeGone(c.tools, u, keepTools)...)

	keepPrompts := map[string]bool{}
	for _, p := range l.prompts {
		name := exposed(u, p.Name)
		if e, ok := c.prompts[name]; ok && e.u != u {
			conflict("prompt", name, e.u)
			continue
		}
		if !admit(pin.Prompt, p.Name, p) {
			continue
		}
		cp := *p
		cp.Name = name
		c.prompts[name] = entry{u: u, name: p.Name}
		keepPrompts[name] = true
		c.server.AddPrompt(&cp, c.getPrompt(u, p.Name))
	}
	c.server.RemovePrompts(removeGone(c.prompts, u, keepPrompts)...)

	keepResources := map[string]bool{}
	for _, r := range l.resources {
		if e, ok := c.resources[r.URI]; ok && e.u != u {
			conflict("resource", r.URI, e.u)
			continue
		}
		if _, err := url.Parse(r.URI); err != nil {
			u.logger.Error("resource refused: invalid URI", "uri", r.URI)
			continue
		}
		cp := *r
		cp.Name = exposed(u, r.Name)
		c.resources[r.URI] = entry{u: u, name: r.URI}
		keepResources[r.URI] = true
		c.server.AddResource(&cp, c.readResource(u))
	}
	c.server.RemoveResources(removeGone(c.resources, u, keepResources)...)

	keepTemplates := map[string]bool{}
	for _, t := range l.templates {
		if e, ok := c.templates[t.URITemplate]; ok && e.u != u {
			conflict("resource template", t.URITemplate, e.u)
			continue
		}
		tmpl, err := uritemplate.New(t.URITemplate)
		if err != nil {
			u.logger.Error("resource template refused: invalid URI template", "uri_template", t.URITemplate)
			continue
		}
		if !admit(pin.ResourceTemplate, t.Name, t) {
			continue
		}
		cp := *t
		cp.Name = exposed(u, t.Name)
		c.templates[t.URITemplate] = template{entry{u: u, name: t.URITemplate}, tmpl.Regexp()}
		keepTemplates[t.URITemplate] = true
		c.server.AddResourceTemplate(&cp, c.readResource(u))
	}
	var goneTemplates []string
	for k, t := range c.templates {
		if t.u == u && !keepTemplates[k] {
			delete(c.templates, k)
			goneTemplates = append(goneTemplates, k)
		}
	}
	c.server.RemoveResourceTemplates(goneTemplates...)
	c.conflicts = append(c.conflicts, conflicts...)
	c.defs[u] = defs
	u.logger.Info("upstream catalog synced", "tools", len(keepTools), "prompts", len(keepPrompts),
		"resources", len(keepResources), "resource_templates", len(keepTemplates))
	return true
}

// removeGone deletes u's items that are not in keep from m and returns their keys.
func removeGone(m map[string]entry, u *Upstream, keep map[string]bool) []string {
	var gone []string
	for k, e := range m {
		if e.u == u && !keep[k] {
			delete(m, k)
			gone = append(gone, k)
		}
	}
	return gone
}

// toolNamePattern is what MCP allows in a tool name.
var toolNamePattern = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,128}$`)

// checkTool refuses a tool definition the SDK would reject (it panics on
// some): what an upstream lists is untrusted input.
func checkTool(name string, t *mcp.Tool) error {
	if !toolNamePattern.MatchString(name) {
		return fmt.Errorf("check tool: name %q is not 1-128 characters of A-Z a-z 0-9 _ . -", name)
	}
	schema, ok := t.InputSchema.(map[string]any)
	if !ok || schema["type"] != "object" {
		return errors.New(`check tool: inputSchema is not a JSON Schema of type "object"`)
	}
	if t.OutputSchema != nil {
		if out, ok := t.OutputSchema.(map[string]any); !ok || out["type"] != "object" {
			return errors.New(`check tool: outputSchema is not a JSON Schema of type "object"`)
		}
	}
	return nil
}

// fetchLists lists everything a session's server advertises, every page.
func fetchLists(ctx context.Context, cs *mcp.ClientSession) (*lists, error) {
	caps := cs.InitializeResult().Capabilities
	l := &lists{}
	var err error
	if caps.Tools != nil {
		if l.tools, err = collect(cs.Tools(ctx, nil)); err != nil {
			return nil, fmt.Errorf("list tools: %w", err)
		}
	}
	if caps.Prompts != nil {
		if l.prompts, err = collect(cs.Prompts(ctx, nil)); err != nil {
			return nil, fmt.Errorf("list prompts: %w", err)
		}
	}
	if caps.Resources != nil {
		if l.resources, err = collect(cs.Resources(ctx, nil)); err != nil {
			return nil, fmt.Errorf("list resources: %w", err)
		}
		if l.templates, err = collect(cs.ResourceTemplates(ctx, nil)); err != nil {
			return nil, fmt.Errorf("list resource templates: %w", err)
		}
	}
	return l, nil
}

// maxListItems bounds what one upstream may list of one kind: the catalog
// lives in memory, and an upstream is not trusted to be reasonable.
const maxListItems = 10000

func collect[T any](seq func(func(T, error) bool)) ([]T, error) {
	var out []T
	for item, err := range seq {
		if err != nil {
			return nil, err
		}
		if len(out) == maxListItems {
			return nil, fmt.Errorf("more than %d items", maxListItems)
		}
		out = append(out, item)
	}
	return out, nil
}

// Has reports whether the catalog serves a tool, prompt ("tool", "prompt")
// or resource URI ("resource") by the name a client uses.
func (c *Catalog) Has(kind, name string) bool {
	switch kind {
	case "tool":
		c.mu.Lock()
		defer c.mu.Unlock()
		_, ok := c.tools[name]
		return ok
	case "prompt":
		c.mu.Lock()
		defer c.mu.Unlock()
		_, ok := c.prompts[name]
		return ok
	case "resource":
		_, err := c.resolveResource(name)
		return err == nil
	}
	return false
}

// resolveResource returns the upstream serving uri: the one listing it, or
// the one whose template matches it. A URI two upstreams' templates match is
// refused rather than guessed.
func (c *Catalog) resolveResource(uri string) (*Upstream, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.resources[uri]; ok {
		return e.u, nil
	}
	var owners []*Upstream
	for _, t := range c.templates {
		if t.match.MatchString(uri) && !slices.Contains(owners, t.u) {
			owners = append(owners, t.u)
		}
	}
	switch len(owners) {
	case 0:
		return nil, resourceNotFound(uri)
	case 1:
		return owners[0], nil
	}
	c.logger.Warn("resource URI matches templates of several upstreams: refused", "uri", uri)
	return nil, resourceNotFound(uri)
}
