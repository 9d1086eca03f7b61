package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcpgate/mcpgate/internal/audit"
	"github.com/mcpgate/mcpgate/internal/config"
	"github.com/mcpgate/mcpgate/internal/pin"
	"github.com/mcpgate/mcpgate/internal/telemetry"
	"github.com/mcpgate/mcpgate/internal/upstream"
)

// integrity admits the upstreams' definitions by the tool lockfile
// (tool_integrity): a definition that is new or changed since it was
// pinned, or (with findings: block) carries a poisoned description, is
// quarantined, or with mode warn only reported. Each problem is logged (a
// change with its diff), counted and audited once per definition digest.
type integrity struct {
	enforce bool // quarantine; false: warn only
	block   bool // findings quarantine too
	path    string
	lock    atomic.Pointer[pin.Lock]
	logger  *slog.Logger
	metrics *telemetry.Metrics
	audit   Auditor // nil: no audit log

	mu       sync.Mutex
	reported map[string]bool // upstream/kind/name/digest/problem already reported
	// crossBlocked holds the definitions (upstream/kind/name) that the
	// checks across upstreams (shadowing, tool references) flagged, when
	// findings block.
	crossBlocked map[string]bool
}

// maxReported bounds the memory of what was reported: past it, problems are
// reported again (which is only noise).
const maxReported = 100_000

// newIntegrity loads the lockfile for cfg, or returns nil when tool
// integrity is off.
func newIntegrity(cfg config.ToolIntegrity, logger *slog.Logger, metrics *telemetry.Metrics) (*integrity, error) {
	mode := cfg.EffectiveMode()
	if mode == config.IntegrityOff {
		return nil, nil
	}
	i := &integrity{
		enforce:  mode == config.IntegrityEnforce,
		block:    cfg.Findings == config.IntegrityBlock,
		path:     cfg.Lockfile,
		logger:   logger,
		metrics:  metrics,
		reported: map[string]bool{},
	}
	lock, err := readLock(cfg.Lockfile)
	if err != nil {
		if !i.enforce && errors.Is(err, os.ErrNotExist) {
			// warn before the first pin: everything is new.
			lock, _ = pin.NewLock(nil)
		} else {
			return nil, fmt.Errorf("tool_integrity: %w (mcpgate pin writes it)", err)
		}
	}
	i.lock.Store(lock)
	return i, nil
}

func readLock(path string) (*pin.Lock, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read lockfile: %w", err)
	}
	lock, err := pin.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("read lockfile %s: %w", path, err)
	}
	return lock, nil
}

// Admit implements upstream.Integrity.
func (i *integrity) Admit(d pin.Definition) bool {
	admit := true
	v := i.lock.Load().Check(d)
	switch {
	case v.Err != nil:
		i.report(d, "unreadable", v.Digest, i.enforce, "definition cannot be pinned", "error", v.Err)
		admit = !i.enforce
	case v.Status == pin.New:
		i.report(d, "new", v.Digest, i.enforce, "definition not in the lockfile")
		admit = !i.enforce
	case v.Status == pin.Changed:
		i.report(d, "changed", v.Digest, i.enforce, "definition changed since it was pinned", "diff", v.Diff)
		admit = !i.enforce
	}
	for _, f := range pin.Findings([]pin.Definition{d}) {
		i.report(d, "finding:"+f.Rule, v.Digest, i.block, "poisoned description", "rule", f.Rule, "detail", f.Detail)
		if i.block {
			admit = false
		}
	}
	i.mu.Lock()
	if i.crossBlocked[defKey(d)] {
		admit = false
	}
	i.mu.Unlock()
	return admit
}

// crossUpstream are the finding rules that compare upstreams: Admit sees
// one definition at a time, Review sees them all.
var crossUpstream = map[string]bool{pin.RuleShadowing: true, pin.RuleToolReference: true}

// Review implements upstream.Integrity: it runs the checks across
// upstreams over everything listed, reports what they find, and with
// findings: block says whether the set of definitions they quarantine
// changed (the catalog then re-lists, and Admit refuses them).
func (i *integrity) Review(all []pin.Definition) bool {
	byKey := make(map[string]pin.Definition, len(all))
	for _, d := range all {
		byKey[defKey(d)] = d
	}
	blocked := map[string]bool{}
	for _, f := range pin.Findings(all) {
		if !crossUpstream[f.Rule] {
			continue
		}
		d, ok := byKey[defKey(pin.Definition{Upstream: f.Upstream, Kind: f.Kind, Name: f.Name})]
		if !ok {
			continue
		}
		digest, _ := pin.Digest(d.Kind, d.Raw)
		i.report(d, "finding:"+f.Rule, digest, i.block, "poisoned description", "rule", f.Rule, "detail", f.Detail)
		if i.block {
			blocked[defKey(d)] = true
		}
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	changed := !maps.Equal(i.crossBlocked, blocked)
	i.crossBlocked = blocked
	return changed
}

func defKey(d pin.Definition) string {
	return d.Upstream + "\x00" + string(d.Kind) + "\x00" + d.Name
}

// report logs, counts and audits one problem with d, once per digest.
func (i *integrity) report(d pin.Definition, problem, digest string, quarantined bool, msg string, attrs ...any) {
	key := d.Upstream + "\x00" + string(d.Kind) + "\x00" + d.Name + "\x00" + digest + "\x00" + problem
	i.mu.Lock()
	seen := i.reported[key]
	if !seen {
		if len(i.reported) >= maxReported {
			clear(i.reported)
		}
		i.reported[key] = true
	}
	i.mu.Unlock()
	if seen {
		return
	}
	attrs = append([]any{"upstream", d.Upstream, "kind", d.Kind, "name", d.Name, "digest", digest, "quarantined", quarantined}, attrs...)
	if quarantined {
		i.logger.Error("QUARANTINED: "+msg, attrs...)
	} else {
		i.logger.Warn(msg, attrs...)
	}
	i.metrics.Quarantine(d.Upstream, string(d.Kind), problem, quarantined)
	if i.audit == nil {
		return
	}
	decision := audit.Allow
	if quarantined {
		decision = audit.Deny
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ev := audit.Event{
		Time: time.Now().UTC(), Principal: "mcpgate", Method: "mcpgate/definition", Upstream: d.Upstream,
		Name: string(d.Kind) + " " + d.Name, Decision: decision, Reason: problem + " " + digest,
	}
	if err := i.audit.Append(ctx, ev); err != nil {
		i.logger.Error("audit record of a quarantine not written", "error", err)
	}
}

// reload re-reads the lockfile.
func (i *integrity) reload() error {
	lock, err := readLock(i.path)
	if err != nil {
		return err
	}
	i.lock.Store(lock)
	return nil
}

// redacted counts and audits a tool result from which configured secret
// patterns were removed (the catalog has logged it).
func (g *Gateway) redacted(upstream, tool string, n int) {
	g.metrics.Redaction(upstream)
	if g.audit == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ev := audit.Event{Time: time.Now().UTC(), Principal: "mcpgate", Method: "mcpgate/redaction", Upstream: upstream,
		Name: tool, Decision: audit.Allow, Reason: fmt.Sprintf("%d matches redacted from the result", n)}
	if err := g.audit.Append(ctx, ev); err != nil {
		g.logger.Error("audit record of a redaction not written", "error", err)
	}
}

// ReloadLockfile re-reads the tool lockfile (after `mcpgate pin`) and
// re-lists every upstream. Without tool integrity it does nothing.
func (g *Gateway) ReloadLockfile() error {
	if g.integrity == nil {
		return nil
	}
	if err := g.integrity.reload(); err != nil {
		g.logger.Error("lockfile reload refused; the lockfile in force stays", "error", err)
		return err
	}
	g.logger.Info("lockfile reloaded", "lockfile", g.integrity.path)
	g.catalog.Resync()
	return nil
}

// CollectDefinitions starts every upstream of cfg (those that start on
// demand too), lists what each serves, stops them and returns the
// definitions: what `mcpgate pin` writes to the lockfile. It fails if an
// upstream could not be listed, so that a lockfile is never partial.
func CollectDefinitions(ctx context.Context, cfg *config.Config, logger *slog.Logger) ([]pin.Definition, error) {
	specs, err := upstream.SpecsFromConfig(cfg, BuiltinCommand, logger)
	if err != nil {
		return nil, err
	}
	for i := range specs {
		specs[i].OnDemand = false
	}
	catalog := upstream.NewCatalog(specs, upstream.Options{Version: Version(), Logger: logger, SDKLogger: newSDKLogger(logger)})
	defer catalog.Close()
	if err := catalog.Start(ctx); err != nil {
		return nil, fmt.Errorf("list upstreams: %w", err)
	}
	if missing := catalog.Unlisted(); len(missing) > 0 {
		return nil, fmt.Errorf("list upstreams: %v did not start or answer (see the log); nothing pinned", missing)
	}
	return catalog.Definitions(), nil
}
