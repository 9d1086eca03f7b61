package gateway

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"sync"
	"time"

	"github.com/mcpgate/mcpgate/internal/audit"
	"github.com/mcpgate/mcpgate/internal/limits"
)

// Refusals of requests without a principal (no or a bad credential, a
// request refused before authentication) cost nothing to send, and each
// would otherwise cost a log line and a durable audit record. A flood of
// them from the network could fill the disk and slow every allowed call's
// fsync. So their records are budgeted per source address and in total:
// past the budget a refusal is still answered and counted in the metrics,
// but recorded only as part of a summary record per address ("N more
// refusals from this address"), written when the next refusal comes after
// summaryEvery, and at shutdown. Nothing is lost: the summaries carry the
// counts. Nobody is locked out either: the budget limits records, never
// requests, so clients behind one proxy address are not refused for each
// other's mistakes.
const (
	refusalRecordsPerAddress = 5   // records a second, per source address
	refusalRecordsBurst      = 20  // per source address
	refusalRecordsTotal      = 50  // records a second, all addresses together
	refusalRecordsTotalBurst = 200 // all addresses together
	refusalAddresses         = 4096
	refusalSummaryEvery      = 10 * time.Second
)

// otherAddresses is the summary key of addresses beyond refusalAddresses.
const otherAddresses = "other addresses"

// refusalRecords is the budget of records of refusals without a principal.
type refusalRecords struct {
	perAddress, total *limits.Buckets
	now               func() time.Time

	mu        sync.Mutex
	held      map[string]int // source address -> refusals not recorded one by one
	lastFlush time.Time
}

func newRefusalRecords(now func() time.Time) *refusalRecords {
	if now == nil {
		now = time.Now
	}
	return &refusalRecords{
		perAddress: limits.NewBuckets(refusalRecordsPerAddress, refusalRecordsBurst, refusalAddresses, now),
		total:      limits.NewBuckets(refusalRecordsTotal, refusalRecordsTotalBurst, 1, now),
		now:        now,
		held:       map[string]int{},
		lastFlush:  now(),
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

// admit reports whether a refusal from source may be recorded one by one;
// if not, it is held for the next summary.
func (r *refusalRecords) admit(source string) bool {
	if ok, _ := r.perAddress.Allow(source); ok {
		if ok, _ := r.total.Allow(""); ok {
			return true
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, tracked := r.held[source]; !tracked && len(r.held) >= refusalAddresses {
		source = otherAddresses
	}
	r.held[source]++
	return false
}

// due returns the held counts to summarize, and forgets them, when
// refusalSummaryEvery has passed since the last summary or force is set.
func (r *refusalRecords) due(force bool) map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	if len(r.held) == 0 || (!force && now.Sub(r.lastFlush) < refusalSummaryEvery) {
		return nil
	}
	held := r.held
	r.held, r.lastFlush = map[string]int{}, now
	return held
}

// summarize writes a record per source address for the refusals held since
// the last summary (all of them with force, at shutdown), and logs it.
func (f *front) summarizeRefusals(ctx context.Context, force bool) {
	held := f.refusals.due(force)
	sources := make([]string, 0, len(held))
	for s := range held {
		sources = append(sources, s)
	}
	sort.Strings(sources)
	for _, source := range sources {
		n := held[source]
		f.logger.Warn("requests refused, not logged one by one", "count", n, "source", source)
		if f.audit == nil {
			continue
		}
		ev := audit.Event{
			Time: time.Now().UTC(), Call: audit.NewCallID(), Stage: audit.StageRequest,
			Method: "http:refusals", Decision: audit.Deny, Outcome: audit.OutcomeRefused,
			Reason: fmt.Sprintf("%d more requests without a principal refused from %s, over the budget of records", n, source),
			Remote: source, Count: n,
		}
		if err := f.appendAudit(ctx, ev); err != nil {
			f.logger.Error("audit record of refusals not written", "error", err, "count", n, "source", source)
		}
	}
}
