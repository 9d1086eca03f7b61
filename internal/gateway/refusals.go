package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/mcpgate/mcpgate/internal/audit"
	"github.com/mcpgate/mcpgate/internal/authn"
	"github.com/mcpgate/mcpgate/internal/limits"
	"github.com/mcpgate/mcpgate/internal/telemetry"
	"github.com/mcpgate/mcpgate/internal/transport"
)

// Two kinds of refusal cost their sender nothing but would each cost a log
// line and a durable audit record: requests refused before a principal is
// known (no or a bad credential, a request refused before authentication),
// which anyone who reaches the port can send, and a principal's requests
// refused as too many (429: rate or concurrency limit), which a runaway
// agent loop sends as fast as it can. A flood of either could fill the disk
// and slow every allowed call's fsync. So their records are budgeted, per
// source address or per principal, and in total: past the budget a refusal
// is still answered and counted in the metrics, but recorded only as part of
// a summary record ("N more refusals from this address", or "of this
// principal"), written when the next such refusal comes after summaryEvery,
// and at shutdown. Nothing is lost: the summaries carry the counts. Nobody is
// locked out either: the budget limits records, never requests, so clients
// behind one proxy address are not refused for each other's mistakes. Other
// refusals of a principal (policy, schema, bad JSON) are recorded one by
// one: the principal's rate limit bounds them.
const (
	refusalRecordsPerSource  = 5    // records a second, per source address or principal
	refusalRecordsBurst      = 20   // per source address or principal
	refusalRecordsTotal      = 50   // records a second, all sources together
	refusalRecordsTotalBurst = 200  // all sources together
	refusalSources           = 4096 // sources tracked
	refusalSummaryEvery      = 10 * time.Second
)

// otherSources is the summary key of sources beyond refusalSources.
var otherSources = refusalSource{address: "other sources"}

// refusalSource is whom a budgeted refusal is counted against: a source
// address (no principal) or a principal.
type refusalSource struct {
	address, principal string
}

func (s refusalSource) key() string {
	if s.principal != "" {
		return "principal " + s.principal
	}
	return "address " + s.address
}

func (s refusalSource) String() string {
	if s.principal != "" {
		return "principal " + s.principal
	}
	return s.address
}

// refusalRecords is the budget of records of the refusals budgetedSource
// names.
type refusalRecords struct {
	perSource, total *limits.Buckets
	now              func() time.Time

	mu        sync.Mutex
	held      map[refusalSource]int // refusals not recorded one by one
	lastFlush time.Time
}

func newRefusalRecords(now func() time.Time) *refusalRecords {
	if now == nil {
		now = time.Now
	}
	return &refusalRecords{
		perSource: limits.NewBuckets(refusalRecordsPerSource, refusalRecordsBurst, refusalSources, now),
		total:     limits.NewBuckets(refusalRecordsTotal, refusalRecordsTotalBurst, 1, now),
		now:       now,
		held:      map[refusalSource]int{},
		lastFlush: now(),
	}
}

// sourceAddress is the budget key of a request from remoteAddr (host:port):
// the IPv4 address, or the /64 of an IPv6 one, since a single host is often
// given a whole /64 to choose from.
func sourceAddress(remoteAddr string) string {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return host // not an IP (a Unix socket, a test): its own key
	}
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}

// remoteHost is the client's address without its port.
func remoteHost(remoteAddr string) string {
	if host, _, err := net.SplitHostPort(remoteAddr); err == nil {
		return host
	}
	return remoteAddr
}

// admit reports whether a refusal counted against source may be recorded
// one by one; if not, it is held for the next summary.
func (r *refusalRecords) admit(source refusalSource) bool {
	if ok, _ := r.perSource.Allow(source.key()); ok {
		if ok, _ := r.total.Allow(""); ok {
			return true
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, tracked := r.held[source]; !tracked && len(r.held) >= refusalSources {
		source = otherSources
	}
	r.held[source]++
	return false
}

// due returns the held counts to summarize, and forgets them, when
// refusalSummaryEvery has passed since the last summary or force is set.
func (r *refusalRecords) due(force bool) map[refusalSource]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	if len(r.held) == 0 || (!force && now.Sub(r.lastFlush) < refusalSummaryEvery) {
		return nil
	}
	held := r.held
	r.held, r.lastFlush = map[refusalSource]int{}, now
	return held
}

// summarizeRefusals writes a record per source for the refusals held since
// the last summary (all of them with force, at shutdown), and logs it.
func (f *front) summarizeRefusals(ctx context.Context, force bool) {
	held := f.refusals.due(force)
	sources := make([]refusalSource, 0, len(held))
	for s := range held {
		sources = append(sources, s)
	}
	sort.Slice(sources, func(i, j int) bool { return sources[i].key() < sources[j].key() })
	for _, source := range sources {
		n := held[source]
		f.logger.Warn("requests refused, not logged one by one", "count", n, "source", source.String())
		if f.audit == nil {
			continue
		}
		ev := audit.Event{
			Time: time.Now().UTC(), Call: audit.NewCallID(), Stage: audit.StageRequest,
			Method: "http:refusals", Decision: audit.Deny, Outcome: audit.OutcomeRefused,
			Principal: source.principal, Remote: source.address, Count: n,
		}
		if source.principal != "" {
			ev.Reason = fmt.Sprintf("%d more requests of this principal refused as too many, over the budget of records", n)
		} else {
			ev.Reason = fmt.Sprintf("%d more requests without a principal refused from %s, over the budget of records", n, source.address)
		}
		if err := f.appendAudit(ctx, ev); err != nil {
			f.logger.Error("audit record of refusals not written", "error", err, "count", n, "source", source.String())
		}
	}
}

// budgetedSource is whom a refusal is counted against in the budget of
// records, and whether it is budgeted at all.
func budgetedSource(r *http.Request, p *authn.Principal, ref refusal) (refusalSource, bool) {
	switch {
	case p == nil:
		return refusalSource{address: sourceAddress(r.RemoteAddr)}, true
	case ref.label == telemetry.RefusedRateLimited || ref.label == telemetry.RefusedConcurrency:
		return refusalSource{principal: p.ID}, true
	}
	return refusalSource{}, false
}

// guarded puts next behind the Host/Origin guard. A refusal is a 403,
// counted, logged and audited like every refusal of the front; since anyone
// who reaches the port can send one, its records are budgeted per source
// address. The client is told which header, and the value it sent (quoted,
// cut at 128 characters), so that an operator can tell a misconfigured
// listen.allowed_hosts from an attack in the log.
func (f *front) guarded(guard *transport.HostGuard, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := guard.Check(r)
		if err == nil {
			next.ServeHTTP(w, r)
			return
		}
		ref := refusal{status: http.StatusForbidden, code: transport.CodeInvalidRequest, label: telemetry.RefusedHost,
			message: fmt.Sprintf("forbidden: the Host header %.128q is not allowed", r.Host)}
		if errors.Is(err, transport.ErrOrigin) {
			ref.label = telemetry.RefusedOrigin
			ref.message = fmt.Sprintf("forbidden: the Origin header %.128q is not allowed", strings.Join(r.Header.Values("Origin"), ", "))
		}
		f.reject(w, r, nil, ref)
	})
}
