package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/mcpgate/mcpgate/internal/audit"
	"github.com/mcpgate/mcpgate/internal/authn"
	"github.com/mcpgate/mcpgate/internal/strictjson"
	"github.com/mcpgate/mcpgate/internal/telemetry"
	"github.com/mcpgate/mcpgate/internal/transport"
)

// Authenticator decides who sent a request.
type Authenticator interface {
	Authenticate(r *http.Request) (*authn.Principal, error)
}

// Auditor records the gateway's decisions durably. When a record cannot be
// written the call is refused: no call goes unaudited. Append returns once
// the record is on stable storage (the write-ahead record of a call, a
// refusal); Submit queues a record of what already happened (a call's
// result) without waiting for it, so the response is not delayed.
type Auditor interface {
	Append(ctx context.Context, ev audit.Event) error
	Submit(ev audit.Event) error
}

// front is the MCP endpoint: it authenticates, enforces the POST content
// type and body cap, passes the body through the strict JSON gate, and hands
// the request to the SDK handler of its era. Nothing reaches the SDK that did
// not pass every check.
type front struct {
	auth           Authenticator
	legacy, modern http.Handler
	limits         strictjson.Limits
	maxBody        int64
	readTimeout    time.Duration
	writeTimeout   time.Duration
	streamTimeout  time.Duration
	audit          Auditor // nil: auditing is off (warned at start)
	calls          *calls  // audited calls in flight, for the policy middleware
	logger         *slog.Logger
	metrics        *telemetry.Metrics // nil: not measured
	limiter        *callLimiter
	tracer         trace.Tracer    // nil: tracing off
	sessions       *sessionTable   // caps legacy sessions; nil: no caps (tests)
	streams        streams         // legacy GET event streams, ended at drain
	arguments      *audit.Redactor // records calls' arguments; nil: only their digest
	refusals       *refusalRecords // budgets the records of floods of refusals (refusals.go); nil: no budget
	// challenge makes the WWW-Authenticate values of a 401 or 403 (oauth.go).
	challenge challenger
	// modernJSON answers a 2026-07-28 request that asked for no
	// notifications with one application/json body instead of an event
	// stream: nothing can be sent on its stream but the answer, and a
	// client reads a JSON body for less than an event stream.
	modernJSON http.Handler
}

func (f *front) serve(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodPost, http.MethodGet, http.MethodDelete:
	default:
		w.Header().Set("Allow", "GET, POST, DELETE")
		f.reject(w, r, nil, refusal{http.StatusMethodNotAllowed, transport.CodeInvalidRequest, telemetry.RefusedMethod,
			"method not allowed: use POST, GET or DELETE"})
		return
	}
	p, err := f.auth.Authenticate(r)
	if err != nil {
		f.refuseAuth(w, r, err)
		return
	}
	r = r.WithContext(authn.WithPrincipal(r.Context(), p))
	rc := http.NewResponseController(w)

	if r.Method != http.MethodPost {
		// GET opens a legacy event stream, DELETE ends a legacy session.
		// Both are rate-limited, but a stream lives long: it takes no
		// concurrency slot (stream_timeout bounds it).
		if ref := f.limitRate(w, p, nil); ref != nil {
			f.reject(w, r, p, *ref)
			return
		}
		if !f.allow(w, r, p, f.event(r, p, nil, 0)) {
			return
		}
		rc.SetWriteDeadline(time.Now().Add(f.streamTimeout))
		if r.Method == http.MethodGet {
			ctx, done, ok := f.streams.begin(r.Context())
			if !ok {
				f.reject(w, r, p, refusal{http.StatusServiceUnavailable, transport.CodeInvalidRequest, telemetry.RefusedDraining,
					"service unavailable: the gateway is shutting down"})
				return
			}
			defer done()
			r = r.WithContext(ctx)
			var stop context.CancelFunc
			r, stop = f.untilExpiry(r, p)
			defer stop()
		}
		if f.sessions != nil {
			defer f.sessions.use(r.Header.Get("Mcp-Session-Id"))() // a stream keeps its session busy
		}
		f.dispatched(r, transport.Legacy)
		f.legacy.ServeHTTP(w, r)
		return
	}
	if ct, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || ct != "application/json" {
		f.reject(w, r, p, refusal{http.StatusUnsupportedMediaType, transport.CodeInvalidRequest, telemetry.RefusedMediaType,
			"unsupported media type: POST bodies must be Content-Type: application/json"})
		return
	}
	body, ref := f.readBody(w, r, rc)
	if ref != nil {
		f.reject(w, r, p, *ref)
		return
	}
	msg, err := strictjson.ParseMessage(body, f.limits)
	if err != nil {
		code := transport.CodeParseError
		var se *strictjson.Error
		if errors.As(err, &se) {
			code = se.Code
		}
		f.reject(w, r, p, refusal{http.StatusBadRequest, code, telemetry.RefusedBadJSON,
			"invalid JSON-RPC message: " + clientReason(err)})
		return
	}
	if ref := f.limitRate(w, p, msg); ref != nil {
		f.rejectMessage(w, r, p, msg, *ref)
		return
	}
	release, ref := f.acquire(w, p, msg)
	if ref != nil {
		f.rejectMessage(w, r, p, msg, *ref)
		return
	}
	defer release() // the slot is held until the SDK handler returns
	era := transport.ChooseEra(r.Header, msg)
	if era == transport.Legacy {
		created, ref := f.admitSession(w, r, p, msg)
		if ref != nil {
			f.rejectMessage(w, r, p, msg, *ref)
			return
		}
		defer created()
	}
	ev := f.event(r, p, msg, len(body))
	if f.audit != nil {
		describeArguments(&ev, msg, f.arguments)
	}
	if !f.allow(w, r, p, ev) {
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	rc.SetWriteDeadline(time.Now().Add(f.writeTimeout))
	f.dispatched(r, era)
	if msg.Method == "subscriptions/listen" {
		var stop context.CancelFunc
		r, stop = f.untilExpiry(r, p)
		defer stop()
	}
	if era == transport.Modern {
		if msg.WantsNotifications || msg.Method == "subscriptions/listen" {
			f.modern.ServeHTTP(w, r)
		} else {
			f.modernJSON.ServeHTTP(w, r)
		}
		return
	}
	f.legacy.ServeHTTP(w, r)
}

// untilExpiry bounds a long-lived event stream (a legacy GET stream, a
// 2026-07-28 subscriptions/listen) by the credential that opened it: past
// p.Expires the gateway no longer accepts that credential, so it must not
// go on delivering to it either. The stream ends then, and the client
// reconnects with a fresh credential (a legacy session, bound to its
// principal, and its subscriptions stay). Calls are not cut short: each was
// decided while its credential held, and call_timeout bounds it.
func (f *front) untilExpiry(r *http.Request, p *authn.Principal) (*http.Request, context.CancelFunc) {
	if p == nil || p.Expires.IsZero() {
		return r, func() {}
	}
	ctx, cancel := context.WithDeadline(r.Context(), p.Expires)
	return r.WithContext(ctx), func() {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) && !time.Now().Before(p.Expires) {
			f.logger.Info("event stream ended: its credential expired", "principal", p, "expired", p.Expires)
		}
		cancel()
	}
}

// readBody reads the whole body under the size cap and the read timeout,
// then lifts the read deadline: net/http's background read, which notices a
// client that hangs up (cancellation), must not time out during a long call.
func (f *front) readBody(w http.ResponseWriter, r *http.Request, rc *http.ResponseController) ([]byte, *refusal) {
	tooLarge := &refusal{http.StatusRequestEntityTooLarge, transport.CodeInvalidRequest, telemetry.RefusedTooLarge,
		fmt.Sprintf("request body too large: the limit is %d bytes", f.maxBody)}
	if r.ContentLength > f.maxBody {
		return nil, tooLarge
	}
	rc.SetReadDeadline(time.Now().Add(f.readTimeout))
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, f.maxBody))
	if err != nil {
		// The deadline stays: net/http would otherwise wait to drain the
		// rest of a trickled body before answering. The connection is done.
		w.Header().Set("Connection", "close")
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, tooLarge
		}
		return nil, &refusal{http.StatusBadRequest, transport.CodeInvalidRequest, telemetry.RefusedReadTimeout,
			"could not read the request body within the read timeout"}
	}
	rc.SetReadDeadline(time.Time{})
	return body, nil
}

// clientReason is what a client learns of a strict JSON failure: the gate's
// own reason, which names the problem and where, and nothing else.
func clientReason(err error) string {
	var se *strictjson.Error
	if errors.As(err, &se) {
		return se.Reason
	}
	return "malformed"
}

// event describes a request for the audit log. msg is nil when there is no
// body (GET, DELETE) or it was not parsed.
func (f *front) event(r *http.Request, p *authn.Principal, msg *strictjson.Message, bodyBytes int) audit.Event {
	ev := audit.Event{
		Time:     time.Now().UTC(),
		Session:  r.Header.Get("Mcp-Session-Id"),
		Era:      r.Header.Get("MCP-Protocol-Version"),
		Method:   "http:" + r.Method,
		BytesIn:  int64(bodyBytes),
		Decision: audit.Allow,
	}
	if p != nil {
		ev.Principal, ev.AuthMethod = p.ID, string(p.Method)
		ev.Roles, ev.Scopes = p.Roles, p.Scopes
	}
	if msg != nil {
		switch {
		case msg.Method != "":
			ev.Method = msg.Method
		case msg.Kind == strictjson.Response:
			ev.Method = "response" // a client's answer to a server request
		}
		ev.Name = msg.Name
		if ev.Name == "" {
			ev.Name = msg.URI
		}
		if msg.ProtocolVersion != "" {
			ev.Era = msg.ProtocolVersion
		}
	}
	return ev
}

// allow records an allowed request before anything acts on it (its
// write-ahead record), and refuses the request (503) if the record cannot be
// written. An allowed request's result is recorded when it has been served
// (see ServeHTTP); the policy middleware finds the call by callHeader.
func (f *front) allow(w http.ResponseWriter, r *http.Request, p *authn.Principal, ev audit.Event) bool {
	labels := labelsFrom(r.Context())
	labels.learn(ev, true)
	if f.audit == nil {
		return true
	}
	ev.Call, ev.Stage = audit.NewCallID(), audit.StageRequest
	if err := f.appendAudit(r.Context(), ev); err != nil {
		f.logger.Error("audit record not written: request refused", "error", err, "principal", p, "method", ev.Method)
		f.metrics.Refusal(telemetry.RefusedAuditUnavailable)
		transport.Reject(w, http.StatusServiceUnavailable, transport.CodeInternalError,
			"service unavailable: the audit log cannot be written, so no call is accepted")
		return false
	}
	cs := &callState{ev: ev, start: labels.start}
	if cs.start.IsZero() {
		cs.start = ev.Time
	}
	labels.call = cs
	f.calls.add(cs)
	r.Header.Set(callHeader, ev.Call) // replaces any the client sent
	return true
}

// reject refuses a request: it is logged, audited as a denial, and answered.
func (f *front) reject(w http.ResponseWriter, r *http.Request, p *authn.Principal, ref refusal) {
	f.rejectMessage(w, r, p, nil, ref)
}

// rejectMessage is reject for a request whose body was parsed (msg, or nil):
// its record and metrics name the JSON-RPC method and tool.
//
// A refusal without a principal, or of a principal's request as too many,
// is recorded one by one only within the budget of refusalRecords; past it,
// it is counted towards a summary record.
func (f *front) rejectMessage(w http.ResponseWriter, r *http.Request, p *authn.Principal, msg *strictjson.Message, ref refusal) {
	f.metrics.Refusal(ref.label)
	ev := f.event(r, p, msg, 0)
	labelsFrom(r.Context()).learn(ev, msg != nil)
	if source, budgeted := budgetedSource(r, p, ref); budgeted && f.refusals != nil {
		// The summary is written whatever becomes of this client's request.
		defer f.summarizeRefusals(context.WithoutCancel(r.Context()), false)
		if !f.refusals.admit(source) {
			transport.Reject(w, ref.status, ref.code, ref.message)
			return
		}
	}
	f.logger.Warn("request refused",
		"status", ref.status, "code", ref.code, "reason", ref.message,
		"principal", p, "method", r.Method, "remote", r.RemoteAddr)
	if f.audit != nil {
		ev.Decision, ev.Reason, ev.Outcome = audit.Deny, ref.message, audit.OutcomeRefused
		ev.HTTPStatus, ev.ErrorCode = ref.status, ref.code
		ev.Call, ev.Stage = audit.NewCallID(), audit.StageRequest
		if p == nil {
			ev.Remote = remoteHost(r.RemoteAddr)
		}
		if err := f.appendAudit(r.Context(), ev); err != nil {
			f.logger.Error("audit record of a refusal not written", "error", err)
		}
	}
	transport.Reject(w, ref.status, ref.code, ref.message)
}

// refusal is one way the front turns a request away: what the client is
// told (HTTP status, JSON-RPC code, a client-safe message) and the metric
// label that counts it.
type refusal struct {
	status, code int
	label        string
	message      string
}

// CodeRateLimited is the JSON-RPC error code of a 429. MCP 2026-07-28
// reserves -32020..-32099 for the spec and discourages -32000..-32019, so
// this is an application-defined code outside JSON-RPC's reserved range.
const CodeRateLimited = -31429

// limitRate takes a token from every bucket the request draws on (see
// callLimiter). Past one, it sets Retry-After (whole seconds, rounded up)
// and returns the 429 to answer.
func (f *front) limitRate(w http.ResponseWriter, p *authn.Principal, msg *strictjson.Message) *refusal {
	ok, wait, what := f.limiter.allowRate(p, msg)
	if ok {
		return nil
	}
	secs := retryAfterSeconds(wait)
	w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	return &refusal{http.StatusTooManyRequests, CodeRateLimited, telemetry.RefusedRateLimited,
		fmt.Sprintf("rate limited: too many %s from this principal; retry after %d s", what, secs)}
}

// acquire takes the request's concurrency slots; release gives them back.
func (f *front) acquire(w http.ResponseWriter, p *authn.Principal, msg *strictjson.Message) (release func(), ref *refusal) {
	release, refused := f.limiter.acquire(p, msg)
	if refused == "" {
		return release, nil
	}
	w.Header().Set("Retry-After", "1")
	return nil, &refusal{http.StatusTooManyRequests, CodeRateLimited, telemetry.RefusedConcurrency, "concurrency limit: " + refused}
}

// retryAfterSeconds is d in whole seconds, rounded up, at least 1.
func retryAfterSeconds(d time.Duration) int64 {
	return max(int64((d+time.Second-1)/time.Second), 1)
}

// admitSession applies limits.sessions to a legacy-era POST: a request in a
// session marks it busy while it is served; an initialize (the request that
// makes a session) is admitted, making room by ending the oldest idle
// session past a cap, or refused. The returned done must be called when the
// request has been served.
func (f *front) admitSession(w http.ResponseWriter, r *http.Request, p *authn.Principal, msg *strictjson.Message) (done func(), ref *refusal) {
	if f.sessions == nil {
		return func() {}, nil
	}
	if id := r.Header.Get("Mcp-Session-Id"); id != "" {
		return f.sessions.use(id), nil
	}
	if msg.Method != "initialize" {
		return func() {}, nil // the SDK refuses it: no session
	}
	created, evicted, ok := f.sessions.admit(p.SessionOwner())
	if len(evicted) > 0 {
		f.logger.Info("idle sessions ended to make room for a new one", "principal", p, "ended", len(evicted))
	}
	if !ok {
		w.Header().Set("Retry-After", "5")
		return nil, &refusal{http.StatusTooManyRequests, CodeRateLimited, telemetry.RefusedSessions,
			"too many sessions: every session open for this principal (or this gateway) is in use; end one (DELETE) or retry later"}
	}
	// The SDK names the new session in the response's Mcp-Session-Id.
	return func() { created(w.Header().Get("Mcp-Session-Id")) }, nil
}
