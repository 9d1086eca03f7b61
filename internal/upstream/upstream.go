// Package upstream is mcpgate's side of the MCP servers it fronts. It keeps a
// supervised client session to each one (a stdio child or a remote Streamable
// HTTP server, restarted with backoff when it fails), merges their tools,
// resources, templates and prompts into one catalog served by the gateway's
// *mcp.Server under names that cannot collide, and relays every call,
// progress report, log message, cancellation and server-to-client request to
// the one client it belongs to.
//
// The gateway is an MCP client to each upstream in whichever era the upstream
// speaks (the SDK probes server/discover, then falls back to initialize). Ids
// are the SDK's own per connection, so a client's ids never reach an
// upstream; the client's headers (Authorization above all) never do either:
// the gateway's connection carries only the credentials configured for it.
package upstream

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Spec is one configured upstream, ready to dial.
type Spec struct {
	// Name is the upstream's config name: its identity in logs, audit
	// records and metrics, and the default namespace.
	Name string
	// Namespace prefixes every tool and prompt name ("<namespace>.<name>");
	// empty mounts the upstream's names unchanged.
	Namespace string
	// Dial opens a fresh transport: a new child process or a new remote
	// session. It is called again for every restart and every instance.
	Dial func(ctx context.Context, inst Instance) (mcp.Transport, error)
	// StateDirs gives every instance a private state directory (stdio
	// upstreams: see Instance.Dir).
	StateDirs bool
	// OnDemand defers the start to the first use instead of boot.
	OnDemand bool
	// PerPrincipal gives every principal its own instance.
	PerPrincipal bool
	// MaxInstances caps per-principal instances.
	MaxInstances int
	// IdleTimeout stops a per-principal instance unused for this long.
	IdleTimeout time.Duration
	// CallTimeout bounds every call; past it the call is cancelled upstream.
	CallTimeout time.Duration
	// Protocol pins the MCP revision spoken to the upstream; "" lets the SDK
	// try server/discover, then initialize.
	Protocol string
	// ToolCallTimeout replaces CallTimeout for calls of these tools (by the
	// upstream's own name).
	ToolCallTimeout map[string]time.Duration
	// Tighten holds, by the upstream's own tool name, a JSON Schema the
	// arguments must satisfy on top of the tool's own.
	Tighten map[string]json.RawMessage
	// MaxResultBytes caps one result's JSON size; zero means no cap.
	MaxResultBytes int64
	// Redact's matches in results' text are replaced by [REDACTED].
	Redact []*regexp.Regexp
}

// Instance describes the instance a Dial is for.
type Instance struct {
	// Owner is the principal a per-principal instance serves; "" otherwise.
	Owner string
	// Dir is the instance's private state directory (mode 0700), empty
	// unless Spec.StateDirs. A per-principal instance gets its principal's
	// own directory, kept across restarts and idle stops for the gateway's
	// lifetime, so two principals never share a server's files.
	Dir string
	// gate must see the connection's messages (see relayGate); the
	// transports of this package wire it.
	gate *relayGate
	// limitKill counts a sandbox killed by a resource limit.
	limitKill func(limit string)
}

// JSON-RPC error codes of the gateway's own failures towards an upstream.
// Like the gateway's -31429 they sit outside the ranges JSON-RPC and MCP
// reserve, and mirror the HTTP status they resemble.
const (
	CodeUnavailable = -31503 // the upstream is down, restarting or at capacity
	CodeTimeout     = -31504 // the upstream did not answer within call_timeout
	CodeBadResult   = -31502 // the upstream's result broke the gateway's rules (output schema, size)
)

// unavailable is the error a caller gets when an upstream cannot take a call.
func unavailable(name, why string) error {
	return &jsonrpc.Error{Code: CodeUnavailable, Message: fmt.Sprintf("upstream %q is unavailable: %s", name, why)}
}

// Metrics counts upstream events; the gateway's telemetry implements it.
type Metrics interface {
	UpstreamRestart(upstream string)
	SandboxLimitKill(upstream, limit string)
}

type noMetrics struct{}

func (noMetrics) UpstreamRestart(string)          {}
func (noMetrics) SandboxLimitKill(string, string) {}

// Upstream is one configured upstream with its instances: one shared
// instance, or one per principal plus a lister that only feeds the catalog.
type Upstream struct {
	spec    Spec
	cat     *Catalog
	logger  *slog.Logger
	metrics Metrics
	client  *mcp.Client

	mu       sync.Mutex
	ctx      context.Context // the run context, set by start
	shared   *instance       // shared mode: serves calls and the catalog
	lister   *instance       // per-principal mode: feeds the catalog, never serves calls
	owned    map[string]*instance
	sessions map[*mcp.ClientSession]*instance // live sessions, to attribute what they send
	subs     map[subKey]int                   // instance owner and resource URI -> client sessions subscribed (see subscribe.go)

	subMu  sync.Mutex                    // held while a subscription changes upstream
	upSubs map[subKey]*mcp.ClientSession // under subMu: the session each upstream subscription is on

	stateDir string // parent of the instances' state directories; "" until needed

	resync chan struct{} // a list_changed arrived: re-list (buffered, coalescing)
	wg     sync.WaitGroup
}

// catalogInstance is the instance whose lists make up this upstream's part of
// the catalog.
func (u *Upstream) catalogInstance() *instance {
	if u.spec.PerPrincipal {
		return u.lister
	}
	return u.shared
}

// start begins the upstream's background work under ctx: at boot the
// catalog instance connects, unless the upstream starts on demand.
func (u *Upstream) start(ctx context.Context) {
	u.mu.Lock()
	u.ctx = ctx
	if u.spec.PerPrincipal {
		u.lister = newInstance(u, "")
	} else {
		u.shared = newInstance(u, "")
	}
	u.mu.Unlock()
	u.wg.Go(func() { u.syncLoop(ctx) })
	if u.spec.PerPrincipal {
		u.wg.Go(func() { u.reapLoop(ctx) })
	}
	if !u.spec.OnDemand {
		u.ensureStarted()
	}
}

// ensureStarted starts the catalog instance if it has not been started.
func (u *Upstream) ensureStarted() *instance {
	u.mu.Lock()
	defer u.mu.Unlock()
	in := u.catalogInstance()
	if in.stop == nil {
		in.start(u.ctx)
	}
	return in
}

// stop closes every instance and waits for the background work to end.
func (u *Upstream) stop() {
	// Instances are started (their stop set) under u.mu: read it there.
	u.mu.Lock()
	var started []*instance
	for _, in := range append([]*instance{u.catalogInstance()}, slices.Collect(maps.Values(u.owned))...) {
		if in != nil && in.stop != nil {
			started = append(started, in)
		}
	}
	u.owned = nil
	u.mu.Unlock()
	var wg sync.WaitGroup
	for _, in := range started {
		wg.Go(in.close)
	}
	wg.Wait()
	u.wg.Wait()
	if u.stateDir != "" {
		if err := os.RemoveAll(u.stateDir); err != nil {
			u.logger.Warn("remove instance state directories", "error", err)
		}
	}
}

// instanceInfo returns what Dial needs to know of an instance for owner,
// creating its state directory if the upstream has them.
func (u *Upstream) instanceInfo(owner string) (Instance, error) {
	info := Instance{Owner: owner}
	if !u.spec.StateDirs {
		return info, nil
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.stateDir == "" {
		dir, err := os.MkdirTemp("", "mcpgate-"+u.spec.Name+"-")
		if err != nil {
			return info, fmt.Errorf("create state directory: %w", err)
		}
		// Traversable, not listable: a sandbox's uid reaches its own
		// instance directory (0700, its own) through this one.
		if err := os.Chmod(dir, 0o711); err != nil {
			return info, fmt.Errorf("create state directory: %w", err)
		}
		u.stateDir = dir
	}
	// The principal's id is hashed: ids may hold characters no path should.
	sum := sha256.Sum256([]byte(owner))
	info.Dir = filepath.Join(u.stateDir, hex.EncodeToString(sum[:8]))
	if err := os.MkdirAll(info.Dir, 0o700); err != nil {
		return info, fmt.Errorf("create state directory: %w", err)
	}
	return info, nil
}

// instanceFor returns the instance that serves owner's calls, starting it if
// needed.
func (u *Upstream) instanceFor(owner string) (*instance, error) {
	if !u.spec.PerPrincipal {
		return u.ensureStarted(), nil
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if in, ok := u.owned[owner]; ok {
		return in, nil
	}
	if u.owned == nil {
		if u.ctx.Err() != nil {
			return nil, unavailable(u.spec.Name, "it is shutting down")
		}
		u.owned = map[string]*instance{}
	}
	if len(u.owned) >= u.spec.MaxInstances {
		u.logger.Warn("per-principal instance refused: max_instances reached", "max_instances", u.spec.MaxInstances, "principal", owner)
		return nil, unavailable(u.spec.Name, fmt.Sprintf("it runs its maximum of %d per-principal instances; retry later", u.spec.MaxInstances))
	}
	in := newInstance(u, owner)
	u.owned[owner] = in
	in.start(u.ctx)
	u.logger.Info("per-principal instance started", "principal", owner, "instances", len(u.owned))
	return in, nil
}

// reapLoop stops per-principal instances idle for IdleTimeout.
func (u *Upstream) reapLoop(ctx context.Context) {
	tick := time.NewTicker(max(u.spec.IdleTimeout/4, 100*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		cutoff := time.Now().Add(-u.spec.IdleTimeout)
		var idle []*instance
		u.mu.Lock()
		for owner, in := range u.owned {
			// A subscription is use: the instance sends its updates.
			if in.idleSince(cutoff) && !u.hasSubscriptions(owner) {
				delete(u.owned, owner)
				idle = append(idle, in)
			}
		}
		u.mu.Unlock()
		for _, in := range idle {
			in.close()
			u.logger.Info("idle per-principal instance stopped", "principal", in.owner)
		}
	}
}

// connected is called by an instance's run loop when a session is up,
// before callers may use it.
func (u *Upstream) connected(ctx context.Context, in *instance, cs *mcp.ClientSession) {
	u.mu.Lock()
	if u.sessions == nil {
		u.sessions = map[*mcp.ClientSession]*instance{}
	}
	u.sessions[cs] = in
	isCatalog := in == u.catalogInstance()
	u.mu.Unlock()
	//lint:ignore SA1019 logging is deprecated in 2026-07-28 but legacy upstreams use it.
	if !isModern(cs) && cs.InitializeResult().Capabilities.Logging != nil {
		// Everything is asked for; each client session's own level filters
		// what reaches it (the SDK's ServerSession.Log).
		//lint:ignore SA1019 logging is deprecated in 2026-07-28 but legacy upstreams use it.
		if err := cs.SetLoggingLevel(ctx, &mcp.SetLoggingLevelParams{Level: "debug"}); err != nil {
			in.logger.Debug("upstream refused logging/setLevel", "error", err)
		}
	}
	if isCatalog {
		u.cat.sync(ctx, u, cs)
	}
	u.resubscribe(in) // subscriptions outlive a restart
}

// disconnected forgets a session that ended.
func (u *Upstream) disconnected(cs *mcp.ClientSession) {
	u.mu.Lock()
	delete(u.sessions, cs)
	u.mu.Unlock()
}

// relayed tells the gate of the connection cs that one of its gated
// notifications has been handled.
func (u *Upstream) relayed(cs *mcp.ClientSession) {
	if in := u.instanceOf(cs); in != nil {
		in.gate.relayed()
	}
}

// instanceOf returns the instance a session belongs to, or nil.
func (u *Upstream) instanceOf(cs *mcp.ClientSession) *instance {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.sessions[cs]
}

// requestResync asks the sync loop to re-list (after a list_changed).
func (u *Upstream) requestResync(cs *mcp.ClientSession) {
	if in := u.instanceOf(cs); in == nil || in != u.catalogInstance() {
		return // only the catalog instance's lists count
	}
	select {
	case u.resync <- struct{}{}:
	default: // one is pending already
	}
}

// syncLoop re-lists the catalog instance's tools, resources and prompts
// whenever it announces a change. It runs outside the SDK's notification
// handler, which must not block on a request to the same session.
func (u *Upstream) syncLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-u.resync:
		}
		if cs := u.catalogInstance().current(); cs != nil {
			u.cat.sync(ctx, u, cs)
		}
	}
}

// isModern reports whether a session speaks 2026-07-28 or later.
func isModern(cs *mcp.ClientSession) bool {
	return cs.InitializeResult().ProtocolVersion >= firstModernVersion
}

// firstModernVersion is the first protocol revision of the stateless era.
const firstModernVersion = "2026-07-28"

// errNotAttributable is what an upstream hears when it sends a request that
// cannot be tied to exactly one client.
var errNotAttributable = errors.New("no single client call is in flight on this connection to relay the request to")
