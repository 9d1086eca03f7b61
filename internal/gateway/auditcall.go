package gateway

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpgate/mcpgate/internal/audit"
	"github.com/mcpgate/mcpgate/internal/strictjson"
	"github.com/mcpgate/mcpgate/internal/upstream"
)

// callHeader carries an audited call's id from the front to the policy
// middleware, through the SDK. The SDK hands a handler the request's own
// header map (RequestExtra.Header) in both eras, whereas the context it
// runs a legacy session's handlers on is the session's, not the request's:
// a value put in the request context does not reach them. The front sets
// this header (replacing whatever the client sent) only after writing the
// call's write-ahead record, and the id is random, so a client cannot aim
// its own request at another call's state.
const callHeader = "Mcpgate-Audit-Call"

// callState is one audited call between its write-ahead record and its
// result record: what the front wrote, and what the policy middleware
// learns while the SDK serves it.
type callState struct {
	ev    audit.Event // the request record
	start time.Time   // when the request arrived

	mu       sync.Mutex
	upstream string
	rule     string
	decision audit.Decision // "" : as in ev
	reason   string
	outcome  string
	errCode  int
}

// calls maps the id of each call in flight to its state, so the policy
// middleware can find it; an entry lives as long as its request.
type calls struct{ m sync.Map }

func (c *calls) add(cs *callState) {
	if c != nil {
		c.m.Store(cs.ev.Call, cs)
	}
}

func (c *calls) remove(cs *callState) {
	if c != nil {
		c.m.Delete(cs.ev.Call)
	}
}

// of is the state of the call req belongs to, or nil.
func (c *calls) of(req mcp.Request) *callState {
	if c == nil || req == nil {
		return nil
	}
	extra := req.GetExtra()
	if extra == nil || extra.Header == nil {
		return nil
	}
	id := extra.Header.Get(callHeader)
	if id == "" {
		return nil
	}
	v, _ := c.m.Load(id)
	cs, _ := v.(*callState)
	return cs
}

// served records what a handler returned: the upstream, the rule that
// allowed it, and its outcome.
func (cs *callState) served(upstreamName, rule string, res mcp.Result, err error) {
	if cs == nil {
		return
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.upstream, cs.rule = upstreamName, rule
	cs.outcome, cs.errCode = outcomeOf(res, err)
}

// denied records a refusal by the policy or an argument schema.
func (cs *callState) denied(upstreamName, rule, reason string, code int) {
	if cs == nil {
		return
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.upstream, cs.rule, cs.reason = upstreamName, rule, reason
	cs.decision, cs.outcome, cs.errCode = audit.Deny, audit.OutcomeDenied, code
}

// result is the call's result record: the request record's identity, with
// what happened. latency runs from the request's arrival to the response's
// end; bytesOut is what was written to the client; status is the HTTP
// status (0 over stdio).
func (cs *callState) result(latency time.Duration, bytesOut int64, status int, ctxErr error) audit.Event {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	ev := cs.ev
	ev.Stage = audit.StageResult
	ev.LatencyMS = latency.Milliseconds()
	ev.BytesOut, ev.HTTPStatus = bytesOut, status
	if cs.upstream != "" {
		ev.Upstream = cs.upstream
	}
	if cs.rule != "" {
		ev.Rule = cs.rule
	}
	if cs.decision != "" {
		ev.Decision, ev.Reason = cs.decision, cs.reason
	}
	ev.Outcome, ev.ErrorCode = cs.outcome, cs.errCode
	switch {
	case ev.Outcome != "":
	case ctxErr != nil:
		ev.Outcome = audit.OutcomeCanceled // the client went away first
	case status >= 400:
		ev.Outcome = audit.OutcomeError // refused by the SDK before any handler ran
	default:
		ev.Outcome = audit.OutcomeOK
	}
	return ev
}

// outcomeOf classifies a handler's answer.
func outcomeOf(res mcp.Result, err error) (string, int) {
	var rpcErr *jsonrpc.Error
	switch {
	case err == nil:
		if r, ok := res.(*mcp.CallToolResult); ok && r.IsError {
			return audit.OutcomeToolError, 0
		}
		return audit.OutcomeOK, 0
	case errors.As(err, &rpcErr):
		switch rpcErr.Code {
		case upstream.CodeTimeout:
			return audit.OutcomeTimeout, int(rpcErr.Code)
		case upstream.CodeUnavailable:
			return audit.OutcomeUpstreamUnavailable, int(rpcErr.Code)
		case upstream.CodeBadResult:
			return audit.OutcomeBadResult, int(rpcErr.Code)
		}
		return audit.OutcomeError, int(rpcErr.Code)
	case errors.Is(err, context.Canceled):
		return audit.OutcomeCanceled, 0
	case errors.Is(err, context.DeadlineExceeded):
		return audit.OutcomeTimeout, 0
	}
	return audit.OutcomeError, int(jsonrpc.CodeInternalError)
}

// describeArguments records a tools/call's or prompts/get's arguments, as
// the client sent them, in ev: always their digest, and, when redactor is
// not nil (audit.arguments.record), the arguments themselves, redacted.
// Other messages have none. msg has passed the strict JSON gate.
func describeArguments(ev *audit.Event, msg *strictjson.Message, redactor *audit.Redactor) {
	if msg == nil || (msg.Method != "tools/call" && msg.Method != "prompts/get") || len(msg.Arguments) == 0 {
		return
	}
	ev.ArgsSHA256 = audit.ArgsDigest(msg.Arguments)
	if redactor != nil {
		ev.Arguments, ev.ArgumentsOmitted = redactor.Apply(msg.Arguments)
	}
}
