package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.opentelemetry.io/otel/trace"

	"github.com/mcpgate/mcpgate/internal/audit"
	"github.com/mcpgate/mcpgate/internal/authn"
	"github.com/mcpgate/mcpgate/internal/strictjson"
	"github.com/mcpgate/mcpgate/internal/telemetry"
	"github.com/mcpgate/mcpgate/internal/transport"
)

// MethodLocal is how the principal of a stdio session is known: it is the
// process that started mcpgate and holds its stdin and stdout, so there is
// no credential to check.
const MethodLocal authn.Method = "local"

// LocalPrincipal is the principal of every request on a stdio session
// (`mcpgate run`): ID "local", role "local". Policy rules name it like any
// other principal; audit records carry it.
func LocalPrincipal() *authn.Principal {
	return &authn.Principal{ID: "local", Roles: []string{"local"}, Method: MethodLocal}
}

// ServeStdio serves one MCP session over r and w (newline-delimited JSON,
// the MCP stdio transport) until the client closes r or ctx is done, then
// closes the gateway: children stopped, audit log checkpointed and closed.
//
// The session goes through the same stages as an HTTP request, minus the
// HTTP ones: every message passes the strict JSON gate, is rate- and
// concurrency-limited and audited as LocalPrincipal before the SDK sees it,
// and the policy and argument schemas are applied by the same authorizer.
// The config's auth, listen and admin settings do not apply.
func (g *Gateway) ServeStdio(ctx context.Context, r io.Reader, w io.Writer) (err error) {
	defer func() {
		if cerr := g.Close(); cerr != nil {
			g.logger.Error("audit log not closed cleanly", "error", cerr)
			if err == nil {
				err = cerr
			}
		}
	}()
	if g.audit == nil {
		g.logger.Warn("AUDIT LOG DISABLED: calls are not recorded", "key", "audit.path")
	}
	if err := g.Start(ctx); err != nil {
		return err
	}
	conn := newStdioConn(g.front, LocalPrincipal(), r, w)
	session, err := g.catalog.Server().Connect(ctx, stdioTransport{conn}, nil)
	if err != nil {
		conn.Close()
		return fmt.Errorf("serve stdio: %w", err)
	}
	g.logger.Info("serving over stdio", "principal", "local", "config", g.cfg.Source)
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			session.Close()
		case <-done:
		}
	}()
	err = session.Wait()
	close(done)
	conn.releaseAll()
	if ctx.Err() != nil {
		g.logger.Info("shutting down: interrupted")
		return nil
	}
	g.logger.Info("shutting down: the client closed stdin")
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrClosedPipe) {
		return nil
	}
	return err
}

// stdioTransport hands the SDK a connection made once.
type stdioTransport struct{ conn *stdioConn }

func (t stdioTransport) Connect(context.Context) (mcp.Connection, error) { return t.conn, nil }

// stdioConn is the front of a stdio session: an mcp.Connection that reads
// newline-delimited JSON-RPC messages and lets through to the SDK only those
// that pass the strict JSON gate, the limits and the audit log, carrying the
// local principal as the SDK's token info (as bindSessions does for HTTP).
// What it refuses it answers itself.
type stdioConn struct {
	f         *front
	principal *authn.Principal
	token     *auth.TokenInfo
	r         io.Reader
	lines     chan lineOrErr
	closed    chan struct{}
	closeOnce sync.Once

	wmu sync.Mutex
	w   io.Writer

	mu       sync.Mutex
	inflight map[string]func()     // request id -> release of its concurrency slot
	calls    map[string]*callState // request id -> its audited call, until answered
	spans    map[string]stdioSpan  // request id -> its trace span, until answered (tracing on)
}

// stdioSpan is the trace span of one request on the stdio front, with what
// its end records.
type stdioSpan struct {
	span              trace.Span
	era, method, name string
}

type lineOrErr struct {
	line []byte
	err  error
}

func newStdioConn(f *front, p *authn.Principal, r io.Reader, w io.Writer) *stdioConn {
	c := &stdioConn{
		f:         f,
		principal: p,
		token:     &auth.TokenInfo{UserID: p.SessionOwner(), Extra: map[string]any{principalKey: p}},
		r:         r,
		w:         w,
		lines:     make(chan lineOrErr),
		closed:    make(chan struct{}),
		inflight:  map[string]func(){},
		calls:     map[string]*callState{},
		spans:     map[string]stdioSpan{},
	}
	go c.readLines()
	return c
}

// errLineTooLong marks a message over the size cap; its bytes were skipped.
var errLineTooLong = errors.New("message too large")

// readLines splits r into messages, one per line, each at most maxBody
// bytes (a longer one is skipped to its end and reported).
func (c *stdioConn) readLines() {
	br := bufio.NewReaderSize(c.r, 64<<10)
	send := func(l lineOrErr) bool {
		select {
		case c.lines <- l:
			return true
		case <-c.closed:
			return false
		}
	}
	for {
		var line []byte
		tooLong := false
		for {
			chunk, err := br.ReadSlice('\n')
			if !tooLong {
				if int64(len(line)+len(chunk)) > c.f.maxBody+1 { // +1: the newline
					tooLong, line = true, nil
				} else {
					line = append(line, chunk...)
				}
			}
			if errors.Is(err, bufio.ErrBufferFull) {
				continue
			}
			if err != nil {
				if len(bytes.TrimSpace(line)) > 0 && !tooLong {
					if !send(lineOrErr{line: line}) {
						return
					}
				}
				send(lineOrErr{err: err})
				return
			}
			break
		}
		l := lineOrErr{line: line}
		if tooLong {
			l = lineOrErr{err: errLineTooLong}
		}
		if !send(l) {
			return
		}
	}
}

// Read returns the next message the SDK may handle.
func (c *stdioConn) Read(ctx context.Context) (jsonrpc.Message, error) {
	for {
		var l lineOrErr
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-c.closed:
			return nil, io.EOF
		case l = <-c.lines:
		}
		if errors.Is(l.err, errLineTooLong) {
			c.refuse(ctx, nil, nil, 0, transport.CodeInvalidRequest, telemetry.RefusedTooLarge,
				fmt.Sprintf("message too large: the limit is %d bytes", c.f.maxBody))
			continue
		}
		if l.err != nil {
			return nil, l.err
		}
		line := bytes.TrimRight(l.line, "\r\n")
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if msg, ok := c.admit(ctx, line); ok {
			return msg, nil
		}
	}
}

// admit runs one message through the gate, the limits and the audit log, as
// the HTTP front does for a POST body. ok false: it was refused (and
// answered, if it was a request).
func (c *stdioConn) admit(ctx context.Context, line []byte) (jsonrpc.Message, bool) {
	msg, err := strictjson.ParseMessage(line, c.f.limits)
	if err != nil {
		code := transport.CodeParseError
		var se *strictjson.Error
		if errors.As(err, &se) {
			code = se.Code
		}
		c.refuse(ctx, nil, looseID(line), len(line), code, telemetry.RefusedBadJSON, "invalid JSON-RPC message: "+clientReason(err))
		return nil, false
	}
	decoded, err := jsonrpc.DecodeMessage(line)
	if err != nil {
		c.refuse(ctx, msg, looseID(line), len(line), transport.CodeInvalidRequest, telemetry.RefusedBadJSON, "invalid JSON-RPC message")
		return nil, false
	}
	req, isReq := decoded.(*jsonrpc.Request)
	if isReq {
		// The SDK reads the principal from here, exactly as for HTTP.
		req.Extra = &mcp.RequestExtra{TokenInfo: c.token}
	}
	if msg.Kind != strictjson.Response {
		ok, wait, what := c.f.limiter.allowRate(c.principal, msg)
		if !ok {
			c.refuse(ctx, msg, msg.ID, len(line), CodeRateLimited, telemetry.RefusedRateLimited,
				fmt.Sprintf("rate limited: too many %s from this principal; retry after %d s", what, retryAfterSeconds(wait)))
			return nil, false
		}
	}
	if msg.Method == "notifications/cancelled" {
		c.cancelled(req)
	}
	if msg.Kind == strictjson.Request {
		release, refused := c.f.limiter.acquire(c.principal, msg)
		if refused != "" {
			c.refuse(ctx, msg, msg.ID, len(line), CodeRateLimited, telemetry.RefusedConcurrency, "concurrency limit: "+refused)
			return nil, false
		}
		c.mu.Lock()
		if old := c.inflight[string(msg.ID)]; old != nil {
			old() // a reused id: the SDK answers the duplicate with an error
		}
		c.inflight[string(msg.ID)] = release
		c.mu.Unlock()
	}
	if c.f.audit != nil {
		ev := c.event(msg, len(line))
		ev.Call, ev.Stage = audit.NewCallID(), audit.StageRequest
		describeArguments(&ev, msg, c.f.arguments)
		if err := c.f.appendAudit(ctx, ev); err != nil {
			c.f.logger.Error("audit record not written: request refused", "error", err, "principal", c.principal, "method", msg.Method)
			c.release(msg.ID)
			c.f.metrics.Refusal(telemetry.RefusedAuditUnavailable)
			c.answer(ctx, msg.Kind, msg.ID, transport.CodeInternalError, "service unavailable: the audit log cannot be written, so no call is accepted")
			return nil, false
		}
		if isReq && msg.Kind == strictjson.Request {
			// Its result is recorded when the SDK answers it (Write); a
			// notification or a response has no answer and no result record.
			cs := &callState{ev: ev, start: ev.Time}
			c.f.calls.add(cs)
			extra := req.Extra.(*mcp.RequestExtra)
			if extra.Header == nil {
				extra.Header = http.Header{}
			}
			extra.Header.Set(callHeader, ev.Call)
			c.mu.Lock()
			if old := c.calls[string(msg.ID)]; old != nil {
				c.f.calls.remove(old) // a reused id: the SDK refuses the duplicate
			}
			c.calls[string(msg.ID)] = cs
			c.mu.Unlock()
		}
	}
	if isReq && msg.Kind == strictjson.Request && c.f.tracer != nil {
		extra := req.Extra.(*mcp.RequestExtra)
		if extra.Header == nil {
			extra.Header = http.Header{}
		}
		sp := stdioSpan{span: telemetry.StartStdioSpan(c.f.tracer, extra.Header), era: msg.ProtocolVersion, method: msg.Method, name: msg.Name}
		c.mu.Lock()
		if old, ok := c.spans[string(msg.ID)]; ok {
			old.span.End() // a reused id: the SDK refuses the duplicate
		}
		c.spans[string(msg.ID)] = sp
		c.mu.Unlock()
	}
	return decoded, true
}

// finishCall records the result of the call answered under id: resp is the
// answer (nil: none, the session ended first), n the bytes written.
func (c *stdioConn) finishCall(id string, resp *jsonrpc.Response, n int) {
	c.mu.Lock()
	cs := c.calls[id]
	delete(c.calls, id)
	sp, traced := c.spans[id]
	delete(c.spans, id)
	c.mu.Unlock()
	if traced {
		failure := ""
		if resp == nil {
			failure = "not answered: the session ended"
		}
		telemetry.EndStdioSpan(sp.span, sp.era, sp.method, sp.name, c.principal.ID, failure)
	}
	if cs == nil {
		return
	}
	c.f.calls.remove(cs)
	if resp != nil && resp.Error != nil {
		cs.mu.Lock()
		if cs.outcome == "" || cs.outcome == audit.OutcomeOK {
			cs.outcome, cs.errCode = outcomeOf(nil, resp.Error)
		}
		cs.mu.Unlock()
	}
	var ended error
	if resp == nil {
		ended = context.Canceled
	}
	c.f.submitAudit(cs.result(time.Since(cs.start), int64(n), 0, ended))
}

// event describes a stdio message for the audit log, as front.event does
// for HTTP.
func (c *stdioConn) event(msg *strictjson.Message, n int) audit.Event {
	ev := audit.Event{
		Time:       time.Now().UTC(),
		Era:        msg.ProtocolVersion,
		Method:     msg.Method,
		Name:       msg.Name,
		BytesIn:    int64(n),
		Decision:   audit.Allow,
		Principal:  c.principal.ID,
		Roles:      c.principal.Roles,
		Scopes:     c.principal.Scopes,
		AuthMethod: string(c.principal.Method),
	}
	if msg.Kind == strictjson.Response {
		ev.Method = "response" // the client's answer to a server request
	}
	if ev.Name == "" {
		ev.Name = msg.URI
	}
	return ev
}

// refuse logs, counts, audits and answers a refused message. msg is nil if
// it did not parse; id is what to answer to (nil: nothing, or null for a
// message that did not parse).
func (c *stdioConn) refuse(ctx context.Context, msg *strictjson.Message, id json.RawMessage, n int, code int, label, message string) {
	c.f.logger.Warn("request refused", "code", code, "reason", message, "principal", c.principal, "transport", "stdio")
	c.f.metrics.Refusal(label)
	ev := audit.Event{Time: time.Now().UTC(), Method: "stdio", BytesIn: int64(n), Principal: c.principal.ID, AuthMethod: string(c.principal.Method)}
	kind := strictjson.Request
	if msg != nil {
		ev = c.event(msg, n)
		kind = msg.Kind
	}
	if c.f.audit != nil {
		ev.Decision, ev.Reason, ev.Outcome, ev.ErrorCode = audit.Deny, message, audit.OutcomeRefused, code
		ev.Call, ev.Stage = audit.NewCallID(), audit.StageRequest
		if err := c.f.appendAudit(ctx, ev); err != nil {
			c.f.logger.Error("audit record of a refusal not written", "error", err)
		}
	}
	c.answer(ctx, kind, id, code, message)
}

// answer writes an error response to a refused request. Notifications and
// responses get none; a message whose id is unknown is answered with a null
// id, as JSON-RPC says.
func (c *stdioConn) answer(ctx context.Context, kind strictjson.Kind, id json.RawMessage, code int, message string) {
	if kind != strictjson.Request {
		return
	}
	resp := struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Error   jsonrpc.Error   `json:"error"`
	}{"2.0", id, jsonrpc.Error{Code: int64(code), Message: message}}
	if resp.ID == nil {
		resp.ID = json.RawMessage("null")
	}
	b, err := json.Marshal(resp)
	if err != nil {
		return
	}
	c.writeLine(ctx, b)
}

// looseID is the id of a message the gate refused, if plain decoding finds
// a string or integer one: the client is then answered instead of left
// waiting. nil if there is none.
func looseID(line []byte) json.RawMessage {
	var m struct {
		ID json.RawMessage `json:"id"`
	}
	if json.Unmarshal(line, &m) != nil || len(m.ID) == 0 {
		return nil
	}
	var s string
	if json.Unmarshal(m.ID, &s) == nil {
		return m.ID
	}
	if _, err := strconv.ParseInt(string(m.ID), 10, 54); err == nil {
		return m.ID
	}
	return nil
}

// cancelled frees the slot of a request the client cancelled: the SDK may
// never answer it.
func (c *stdioConn) cancelled(req *jsonrpc.Request) {
	if req == nil {
		return
	}
	var p struct {
		RequestID json.RawMessage `json:"requestId"`
	}
	if json.Unmarshal(req.Params, &p) == nil && p.RequestID != nil {
		c.release(p.RequestID)
	}
}

func (c *stdioConn) release(id json.RawMessage) {
	c.mu.Lock()
	rel := c.inflight[string(id)]
	delete(c.inflight, string(id))
	c.mu.Unlock()
	if rel != nil {
		rel()
	}
}

func (c *stdioConn) releaseAll() {
	c.mu.Lock()
	rels := c.inflight
	c.inflight = map[string]func(){}
	pending := make([]string, 0, len(c.calls)+len(c.spans))
	for id := range c.calls {
		pending = append(pending, id)
	}
	for id := range c.spans {
		if _, audited := c.calls[id]; !audited {
			pending = append(pending, id)
		}
	}
	c.mu.Unlock()
	for _, rel := range rels {
		rel()
	}
	for _, id := range pending {
		c.finishCall(id, nil, 0) // never answered: the session ended
	}
}

// Write sends a message to the client; a response frees its request's slot.
func (c *stdioConn) Write(ctx context.Context, msg jsonrpc.Message) error {
	b, err := jsonrpc.EncodeMessage(msg)
	if err != nil {
		return err
	}
	err = c.writeLine(ctx, b)
	if resp, ok := msg.(*jsonrpc.Response); ok && resp.ID.IsValid() {
		if id, merr := json.Marshal(resp.ID.Raw()); merr == nil {
			c.release(id)
			n := len(b) + 1
			if err != nil {
				n = 0
			}
			c.finishCall(string(id), resp, n)
		}
	}
	return err
}

func (c *stdioConn) writeLine(ctx context.Context, b []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	select {
	case <-c.closed:
		return io.ErrClosedPipe
	default:
	}
	_, err := c.w.Write(append(b, '\n'))
	return err
}

// Close ends the session: the reader and the writer are closed if they can
// be (the client sees end of file; a read or write in progress returns).
// The write lock is not taken: a client that stopped reading must not keep
// the session from closing.
func (c *stdioConn) Close() error {
	c.closeOnce.Do(func() {
		close(c.closed)
		if rc, ok := c.r.(io.Closer); ok {
			rc.Close()
		}
		if wc, ok := c.w.(io.Closer); ok {
			wc.Close()
		}
	})
	return nil
}

// SessionID is empty: a stdio connection is its own session.
func (c *stdioConn) SessionID() string { return "" }
