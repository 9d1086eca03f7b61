package upstream

import (
	"cmp"
	"context"
	"maps"
	"sort"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Resource subscriptions. A client session subscribes to a resource URI
// through resources/subscribe (2025-11-25) or a subscriptions/listen stream
// (2026-07-28; the SDK calls the same handlers when the stream opens and
// ends). The gateway holds one upstream subscription per URI and upstream
// instance (the shared one, or the subscribing principal's own) while at
// least one client session wants it:
//
//   - subscribers records, per client session, what it subscribed to. A
//     session counts once per URI however often it subscribes, and when it
//     ends (DELETE, idle timeout, eviction, the end of a listen stream) its
//     subscriptions are dropped as if it had unsubscribed.
//   - Upstream.subs counts the sessions per instance and URI; reconcile
//     makes the upstream's subscriptions follow that count.
//   - An update is relayed through the SDK's Server.ResourceUpdated, which
//     knows which sessions subscribed to the URI and how to reach each in
//     its era; filterUpdates, a sending middleware, lets it reach only the
//     sessions that subscribed on the instance it came from. So an update
//     from one principal's instance never reaches another principal.

// subKey names one upstream subscription of an Upstream: the principal of
// the instance that holds it ("" on a shared upstream) and the URI.
type subKey struct {
	owner, uri string
}

// subscription is one client session's subscription.
type subscription struct {
	u *Upstream
	subKey
	// by is the token the subscription was made with, for
	// RevokeSubscriptions to decide it again; nil without authentication.
	by *auth.TokenInfo
}

// same reports whether s and o are one subscription: on the same instance
// and URI, whoever's token made them.
func (s subscription) same(o subscription) bool {
	return s.u == o.u && s.subKey == o.subKey
}

// subscribers records the subscriptions of every client session.
type subscribers struct {
	mu       sync.Mutex
	sessions map[*mcp.ServerSession]map[string]subscription // session -> URI -> subscription
	closed   bool                                           // Close has begun: no new subscriptions
	watchers sync.WaitGroup                                 // one per session in sessions: see watch
}

// updateSourceKey marks, in the _meta of an update the catalog hands the
// SDK, the instance it came from (an *updateSource). filterUpdates removes
// it before anything is sent.
const updateSourceKey = "mcpgate/update-source"

// updateSource is the instance a resource update came from.
type updateSource struct {
	u     *Upstream
	owner string
}

// subscribe is the SDK's SubscribeHandler: it records a client session's
// subscription and subscribes upstream if it is the first for that URI on
// that instance. On an upstream with an instance per principal the
// subscription goes to the subscriber's own instance.
func (c *Catalog) subscribe(ctx context.Context, req *mcp.SubscribeRequest) error {
	uri := req.Params.URI
	u, err := c.resolveResource(uri)
	if err != nil {
		return err
	}
	by := subscriberToken(ctx, req)
	sub := subscription{u: u, subKey: subKey{uri: uri}, by: by}
	if u.spec.PerPrincipal {
		sub.owner = c.subscriberOwner(req, by)
		if _, err := u.instanceFor(sub.owner); err != nil {
			return err
		}
	}
	ss := req.Session
	c.subs.mu.Lock()
	if c.subs.closed {
		c.subs.mu.Unlock()
		return unavailable(u.spec.Name, "the gateway is shutting down")
	}
	if c.subs.sessions == nil {
		c.subs.sessions = map[*mcp.ServerSession]map[string]subscription{}
	}
	mine := c.subs.sessions[ss]
	if mine == nil {
		mine = map[string]subscription{}
		c.subs.sessions[ss] = mine
		c.subs.watchers.Go(func() { c.watch(ss) })
	}
	old, had := mine[uri]
	if had && old.same(sub) {
		mine[uri] = sub // the newest token decides it from now on
		c.subs.mu.Unlock()
		return nil // subscribed already: counted once
	}
	mine[uri] = sub
	sub.u.count(sub.subKey, +1)
	if had {
		old.u.count(old.subKey, -1) // the URI now resolves elsewhere
	}
	c.subs.mu.Unlock()
	if had {
		old.u.reconcile(old.subKey)
	}
	sub.u.reconcile(sub.subKey)
	return nil
}

// unsubscribe is the SDK's UnsubscribeHandler. Unsubscribing from what the
// session did not subscribe to is no error.
func (c *Catalog) unsubscribe(_ context.Context, req *mcp.UnsubscribeRequest) error {
	c.subs.mu.Lock()
	sub, ok := c.subs.sessions[req.Session][req.Params.URI]
	if ok {
		delete(c.subs.sessions[req.Session], req.Params.URI)
		sub.u.count(sub.subKey, -1)
	}
	c.subs.mu.Unlock()
	if ok {
		sub.u.reconcile(sub.subKey)
	}
	return nil
}

// subscriberToken is the token a subscription is made with. A
// subscription of a subscriptions/listen stream reaches the handler without
// the request's token info (the SDK makes the request itself); it is then
// taken from the stream's context, which carries it.
func subscriberToken(ctx context.Context, req *mcp.SubscribeRequest) *auth.TokenInfo {
	if req.Extra != nil && req.Extra.TokenInfo != nil {
		return req.Extra.TokenInfo
	}
	return auth.TokenInfoFromContext(ctx)
}

// subscriberOwner is the principal a subscription made with token by is
// for.
func (c *Catalog) subscriberOwner(req *mcp.SubscribeRequest, by *auth.TokenInfo) string {
	if by != nil && (req.Extra == nil || req.Extra.TokenInfo == nil) {
		r := *req
		r.Extra = &mcp.RequestExtra{TokenInfo: by}
		return c.owner(&r)
	}
	return c.owner(req)
}

// RevokedSubscription is a client session's subscription that
// RevokeSubscriptions ended.
type RevokedSubscription struct {
	Session *mcp.ServerSession
	URI     string
	By      *auth.TokenInfo // the token it was made with
}

// RevokeSubscriptions decides every client subscription again, with
// Options.MayRead, and ends those it refuses as if their sessions had unsubscribed: their
// updates stop at once (filterUpdates sends only what a session holds), and
// the upstream's subscription ends with the last client that held it. The
// session itself goes on, and may subscribe again to what it may read. The
// gateway calls it when the policy changes: a subscription is a standing
// grant, and must not outlive the rule that allowed it.
// Without Options.MayRead it revokes nothing.
func (c *Catalog) RevokeSubscriptions() []RevokedSubscription {
	if c.mayRead == nil {
		return nil
	}
	type held struct {
		ss  *mcp.ServerSession
		uri string
		sub subscription
	}
	c.subs.mu.Lock()
	var all []held
	for ss, mine := range c.subs.sessions {
		for uri, sub := range mine {
			all = append(all, held{ss, uri, sub})
		}
	}
	c.subs.mu.Unlock()
	// MayRead runs without the lock: it is the policy's business, not the
	// catalog's, how long a decision takes.
	var refused []held
	for _, h := range all {
		if !c.mayRead(h.sub.by, h.uri) {
			refused = append(refused, h)
		}
	}
	var revoked []RevokedSubscription
	var released []subscription
	c.subs.mu.Lock()
	for _, h := range refused {
		// Unless the session unsubscribed or subscribed again since.
		if cur, ok := c.subs.sessions[h.ss][h.uri]; ok && cur.same(h.sub) && cur.by == h.sub.by {
			delete(c.subs.sessions[h.ss], h.uri)
			cur.u.count(cur.subKey, -1)
			released = append(released, cur)
			revoked = append(revoked, RevokedSubscription{Session: h.ss, URI: h.uri, By: cur.by})
		}
	}
	c.subs.mu.Unlock()
	for _, sub := range released {
		sub.u.reconcile(sub.subKey)
	}
	sort.Slice(revoked, func(i, j int) bool {
		if a, b := revoked[i].Session.ID(), revoked[j].Session.ID(); a != b {
			return a < b
		}
		return revoked[i].URI < revoked[j].URI
	})
	return revoked
}

// watch drops the subscriptions of ss when it ends. It runs from a
// session's first subscription until the session ends; Close ends the
// sessions still watched.
func (c *Catalog) watch(ss *mcp.ServerSession) {
	ss.Wait()
	c.subs.mu.Lock()
	mine := c.subs.sessions[ss]
	delete(c.subs.sessions, ss)
	for _, sub := range mine {
		sub.u.count(sub.subKey, -1)
	}
	c.subs.mu.Unlock()
	for _, sub := range mine {
		sub.u.reconcile(sub.subKey)
	}
}

// closeSubscribers ends the client sessions that still hold subscriptions
// and waits until their subscriptions are dropped. The gateway ends every
// session at shutdown anyway; this keeps the watchers from outliving the
// catalog.
func (c *Catalog) closeSubscribers() {
	c.subs.mu.Lock()
	c.subs.closed = true
	sessions := make([]*mcp.ServerSession, 0, len(c.subs.sessions))
	for ss := range c.subs.sessions {
		sessions = append(sessions, ss)
	}
	c.subs.mu.Unlock()
	for _, ss := range sessions {
		ss.Close()
	}
	c.subs.watchers.Wait()
}

// subscribed reports whether ss subscribed to uri on the instance src, and
// if so with which token.
func (c *Catalog) subscribed(ss *mcp.ServerSession, src *updateSource, uri string) (by *auth.TokenInfo, ok bool) {
	c.subs.mu.Lock()
	defer c.subs.mu.Unlock()
	sub, ok := c.subs.sessions[ss][uri]
	return sub.by, ok && sub.u == src.u && sub.owner == src.owner
}

// relayUpdate hands an upstream's notifications/resources/updated from the
// instance of owner to the SDK, marked with its source for filterUpdates.
// The upstream's subscription id names the gateway's own listen stream,
// not the client's: it is dropped (the SDK sets the client's).
func (c *Catalog) relayUpdate(ctx context.Context, u *Upstream, owner string, params *mcp.ResourceUpdatedNotificationParams) {
	p := *params
	p.Meta = maps.Clone(params.Meta)
	if p.Meta == nil {
		p.Meta = mcp.Meta{}
	}
	delete(p.Meta, mcp.MetaKeySubscriptionID)
	p.Meta[updateSourceKey] = &updateSource{u: u, owner: owner}
	if err := c.server.ResourceUpdated(ctx, &p); err != nil {
		u.logger.Debug("relay resource update", "error", err)
	}
}

// filterUpdates is the server's sending middleware: a
// notifications/resources/updated reaches a session only if the session
// subscribed to that URI on the instance the update came from, and
// Options.MayRead, asked now, still lets the subscriber read it (a
// subscription decided under a policy a reload has just replaced gets
// nothing). Anything else (an update without a source) is dropped.
func (c *Catalog) filterUpdates(next mcp.MethodHandler) mcp.MethodHandler {
	return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
		if method != "notifications/resources/updated" {
			return next(ctx, method, req)
		}
		p, _ := req.GetParams().(*mcp.ResourceUpdatedNotificationParams)
		ss, _ := req.GetSession().(*mcp.ServerSession)
		if p == nil || ss == nil {
			return nil, nil
		}
		src, _ := p.Meta[updateSourceKey].(*updateSource)
		if src == nil {
			return nil, nil
		}
		by, ok := c.subscribed(ss, src, p.URI)
		if !ok {
			return nil, nil
		}
		if c.mayRead != nil && !c.mayRead(by, p.URI) {
			c.logger.Debug("resource update withheld: the policy no longer lets the subscriber read it", "uri", p.URI, "session", ss.ID())
			return nil, nil
		}
		// The SDK shares the params (and their _meta) between sessions:
		// the copy sent leaves them as they are.
		out := *p
		out.Meta = maps.Clone(p.Meta)
		delete(out.Meta, updateSourceKey)
		if len(out.Meta) == 0 {
			out.Meta = nil
		}
		return next(ctx, method, &mcp.ServerRequest[*mcp.ResourceUpdatedNotificationParams]{Session: ss, Params: &out, Extra: req.GetExtra()})
	}
}

// count adds delta to the client sessions subscribed to key.
func (u *Upstream) count(key subKey, delta int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.subs == nil {
		u.subs = map[subKey]int{}
	}
	u.subs[key] += delta
	if u.subs[key] <= 0 {
		delete(u.subs, key)
	}
}

// hasSubscriptions reports whether a client subscribes on owner's
// instance. u.mu must be held.
func (u *Upstream) hasSubscriptions(owner string) bool {
	for key := range u.subs {
		if key.owner == owner {
			return true
		}
	}
	return false
}

// servesSubscriptions reports whether in holds subscriptions: the shared
// instance, or any per-principal instance (never the lister).
func (u *Upstream) servesSubscriptions(in *instance) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.spec.PerPrincipal {
		return in != u.lister
	}
	return in == u.shared
}

// subscriptionSession returns the live session of the instance that holds
// key's subscription, or nil while it is not connected. A session counts
// from the start of connected, which subscribes it.
func (u *Upstream) subscriptionSession(key subKey) *mcp.ClientSession {
	u.mu.Lock()
	defer u.mu.Unlock()
	in := u.shared
	if u.spec.PerPrincipal {
		in = u.owned[key.owner]
	}
	if in == nil {
		return nil
	}
	for cs, of := range u.sessions {
		if of == in {
			return cs
		}
	}
	return nil
}

// reconcile makes the upstream's subscription for key follow the count of
// client sessions: subscribed on the instance's live session while there
// are any, unsubscribed when the last is gone. Changes run one at a time
// and each looks at the count then, so concurrent ones cannot leave the
// upstream in a state the count does not call for.
func (u *Upstream) reconcile(key subKey) {
	u.subMu.Lock()
	defer u.subMu.Unlock()
	u.mu.Lock()
	want := u.subs[key] > 0
	ctx := u.ctx
	u.mu.Unlock()
	if ctx == nil {
		return // not started
	}
	cs := u.subscriptionSession(key)
	have := u.upSubs[key]
	ctx, cancel := context.WithTimeout(ctx, cmp.Or(u.spec.CallTimeout, connectTimeout))
	defer cancel()
	switch {
	case want && cs != nil && have != cs:
		if u.upSubs == nil {
			u.upSubs = map[subKey]*mcp.ClientSession{}
		}
		u.upSubs[key] = cs
		// In the stateless era this opens a listen stream, which the SDK
		// keeps until Unsubscribe or the session's end; it does not block.
		if err := cs.Subscribe(ctx, &mcp.SubscribeParams{URI: key.uri}); err != nil {
			u.logger.Warn("upstream subscription failed", "uri", key.uri, "error", err)
		}
	case !want && have != nil:
		delete(u.upSubs, key)
		if err := have.Unsubscribe(ctx, &mcp.UnsubscribeParams{URI: key.uri}); err != nil && u.instanceOf(have) != nil {
			u.logger.Debug("upstream unsubscribe failed", "uri", key.uri, "error", err)
		}
	}
}

// resubscribe subscribes a newly connected instance to what clients
// subscribe to on it: subscriptions outlive a restart.
func (u *Upstream) resubscribe(in *instance) {
	if !u.servesSubscriptions(in) {
		return
	}
	u.mu.Lock()
	var keys []subKey
	for key := range u.subs {
		if key.owner == in.owner {
			keys = append(keys, key)
		}
	}
	u.mu.Unlock()
	for _, key := range keys {
		u.reconcile(key)
	}
}
