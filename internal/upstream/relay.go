package upstream

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// call is one client request in flight on an upstream session. What the
// upstream sends while it runs (progress, log messages, requests for input)
// is relayed to the client through it.
type call struct {
	cs *mcp.ClientSession
	// client is whom the call is for, as attribute compares it: the
	// client's session, or for a flight the flight (each client request of
	// a modern client has a session of its own).
	client any
	flight *flight // set for a modern client's call on a legacy upstream

	mu sync.Mutex
	// ctx is the client request's context: notifications sent with it go
	// out on that request's own response stream.
	ctx     context.Context
	session *mcp.ServerSession // nil while no client request waits (a flight between rounds)
	token   any                // the client's progress token, or nil
}

func newCall(ctx context.Context, ss *mcp.ServerSession, cs *mcp.ClientSession, token any) *call {
	return &call{ctx: ctx, session: ss, cs: cs, token: token, client: ss}
}

// target is the client request that the upstream's notifications for this
// call go to now; session is nil when none is waiting.
func (c *call) target() (ctx context.Context, session *mcp.ServerSession, token any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ctx, c.session, c.token
}

// attach makes a flight's notifications go to the client request that now
// waits on it; detach (nil session) drops them between rounds.
func (c *call) attach(ctx context.Context, ss *mcp.ServerSession, token any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ctx, c.session, c.token = ctx, ss, token
}

// calls tracks the calls in flight on every upstream session.
type calls struct {
	mu      sync.Mutex
	seq     uint64
	byToken map[string]*call
	bySess  map[*mcp.ClientSession]map[*call]bool
}

func newCalls() *calls {
	return &calls{byToken: map[string]*call{}, bySess: map[*mcp.ClientSession]map[*call]bool{}}
}

// begin records a call. When the client asked for progress, the upstream gets
// a token of the gateway's own instead of the client's, so that no client
// can aim progress at another's call, and the token maps back to this one.
func (cl *calls) begin(c *call) (upstreamToken string) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if cl.bySess[c.cs] == nil {
		cl.bySess[c.cs] = map[*call]bool{}
	}
	cl.bySess[c.cs][c] = true
	if _, _, token := c.target(); token == nil && c.flight == nil {
		return ""
	}
	cl.seq++
	upstreamToken = "mcpgate-" + strconv.FormatUint(cl.seq, 10)
	cl.byToken[upstreamToken] = c
	return upstreamToken
}

func (cl *calls) end(c *call, upstreamToken string) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	delete(cl.byToken, upstreamToken)
	delete(cl.bySess[c.cs], c)
	if len(cl.bySess[c.cs]) == 0 {
		delete(cl.bySess, c.cs)
	}
}

// byProgressToken returns the call a progress token belongs to, if cs is
// the session that carries it.
func (cl *calls) byProgressToken(cs *mcp.ClientSession, token any) *call {
	s, ok := token.(string)
	if !ok {
		return nil
	}
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if c := cl.byToken[s]; c != nil && c.cs == cs {
		return c
	}
	return nil
}

// attribute returns the call that a message from cs without a request
// reference (a log message; over stdio, a request for input) belongs to. Only
// when every call in flight on cs comes from one client session is the answer
// certain; otherwise it is nil, and the message is not relayed: a guess could
// hand one client's data to another.
func (cl *calls) attribute(cs *mcp.ClientSession) *call {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	var found *call
	for c := range cl.bySess[cs] {
		if found != nil && found.client != c.client {
			return nil
		}
		found = c
	}
	return found
}

// newClient is the MCP client u's instances connect with. Its handlers relay
// what the upstream sends to the client whose call it belongs to.
func (c *Catalog) newClient(u *Upstream) *mcp.Client {
	relayErr := func(kind string) error {
		u.logger.Warn("upstream request for client input not relayed", "kind", kind, "reason", errNotAttributable)
		return fmt.Errorf("relay %s: %w", kind, errNotAttributable)
	}
	return mcp.NewClient(&mcp.Implementation{Name: "mcpgate", Version: "upstream-client"}, &mcp.ClientOptions{
		// Requests for input go to the client; the gateway declares every
		// kind, and a client that lacks one answers with an error.
		Capabilities: &mcp.ClientCapabilities{
			Elicitation: &mcp.ElicitationCapabilities{Form: &mcp.FormElicitationCapabilities{}, URL: &mcp.URLElicitationCapabilities{}},
			//lint:ignore SA1019 sampling is deprecated in 2026-07-28 but legacy upstreams use it.
			Sampling: &mcp.SamplingCapabilities{},
			// Roots are not declared: a legacy server asks for them once per
			// connection and may scope itself by the answer (server-filesystem
			// replaces its allowed directories with them), so one client's
			// roots would govern a server shared with others. An upstream of
			// the stateless era asks per request, and that reaches the client.
		},
		// Input-required results pass through to the client, which answers
		// them; the gateway never answers for it.
		MultiRoundTrip: &mcp.MultiRoundTripOptions{Disabled: true},
		//lint:ignore SA1019 sampling is deprecated in 2026-07-28 but legacy upstreams use it.
		CreateMessageHandler: func(ctx context.Context, req *mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error) {
			call := c.calls.attribute(req.Session)
			if call == nil {
				return nil, relayErr("sampling")
			}
			if f := call.flight; f != nil {
				r, err := f.ask(ctx, "sampling", req.Params)
				if err != nil {
					u.logger.Info("upstream request for sampling not answered", "error", err)
					return nil, err
				}
				//lint:ignore SA1019 sampling is deprecated in 2026-07-28 but legacy upstreams use it.
				return r.(*mcp.CreateMessageResult), nil // fitAnswer made it one
			}
			callCtx, session, _ := call.target()
			ctx, stop := joinCancel(callCtx, ctx)
			defer stop()
			//lint:ignore SA1019 sampling is deprecated in 2026-07-28 but legacy upstreams use it.
			return session.CreateMessage(ctx, req.Params)
		},
		ElicitationHandler: func(ctx context.Context, req *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			call := c.calls.attribute(req.Session)
			if call == nil {
				return nil, relayErr("elicitation")
			}
			if f := call.flight; f != nil {
				r, err := f.ask(ctx, "elicitation", req.Params)
				if err != nil {
					u.logger.Info("upstream request for elicitation not answered", "error", err)
					return nil, err
				}
				return r.(*mcp.ElicitResult), nil // fitAnswer made it one
			}
			callCtx, session, _ := call.target()
			ctx, stop := joinCancel(callCtx, ctx)
			defer stop()
			return session.Elicit(ctx, req.Params)
		},
		ToolListChangedHandler:     func(_ context.Context, req *mcp.ToolListChangedRequest) { u.requestResync(req.Session) },
		PromptListChangedHandler:   func(_ context.Context, req *mcp.PromptListChangedRequest) { u.requestResync(req.Session) },
		ResourceListChangedHandler: func(_ context.Context, req *mcp.ResourceListChangedRequest) { u.requestResync(req.Session) },
		ResourceUpdatedHandler: func(ctx context.Context, req *mcp.ResourceUpdatedNotificationRequest) {
			in := u.instanceOf(req.Session)
			if in == nil || !u.servesSubscriptions(in) {
				return // the lister of a per-principal upstream holds no subscriptions
			}
			// Only the sessions that subscribed on this instance get it.
			c.relayUpdate(ctx, u, in.owner, req.Params)
		},
		//lint:ignore SA1019 logging is deprecated in 2026-07-28 but legacy upstreams use it.
		LoggingMessageHandler: func(_ context.Context, req *mcp.LoggingMessageRequest) {
			defer u.relayed(req.Session)
			call := c.calls.attribute(req.Session)
			if call == nil {
				u.logger.Debug("upstream log message not relayed: no single client call in flight")
				return
			}
			ctx, session, _ := call.target()
			if session == nil {
				return // a flight between rounds: no client request to carry it
			}
			//lint:ignore SA1019 logging is deprecated in 2026-07-28 but legacy upstreams use it.
			if err := session.Log(ctx, req.Params); err != nil {
				u.logger.Debug("relay log message", "error", err)
			}
		},
		ProgressNotificationHandler: func(_ context.Context, req *mcp.ProgressNotificationClientRequest) {
			defer u.relayed(req.Session)
			call := c.calls.byProgressToken(req.Session, req.Params.ProgressToken)
			if call == nil {
				u.logger.Debug("upstream progress for an unknown token dropped")
				return
			}
			ctx, session, token := call.target()
			if session == nil || token == nil {
				return // a flight between rounds, or a round that asked for no progress
			}
			p := *req.Params
			p.ProgressToken = token
			if err := session.NotifyProgress(ctx, &p); err != nil {
				u.logger.Debug("relay progress", "error", err)
			}
		},
		KeepAlive: keepAlive,
	})
}

// keepAlive is how often an idle upstream session is pinged; a session that
// stops answering is closed and restarted.
const keepAlive = 30 * time.Second

// joinCancel returns a context carrying a's values that is cancelled when
// either a or b is: a request relayed to the client ends when the client's
// call ends or when the upstream cancels it.
func joinCancel(a, b context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(a)
	stop := context.AfterFunc(b, cancel)
	return ctx, func() { stop(); cancel() }
}
