//lint:file-ignore SA1019 sampling is deprecated in 2026-07-28 (SEP-2577) but legacy upstreams still ask for it; this file translates their requests.

package upstream

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// A 2026-07-28 client is stateless: the gateway cannot send it a request in
// the middle of its call, as a legacy (2025-11-25) upstream expects to when
// it asks for sampling or elicitation. So when a modern client calls a
// legacy upstream, the upstream call runs as a flight the catalog owns,
// beyond the client's HTTP request. A request for input the upstream sends
// meanwhile ends the client's request with an input-required result: the
// upstream's request as an input request, and a sealed requestState naming
// the flight. The client's retry with inputResponses hands the answers to
// the upstream's waiting requests and waits again, for the final result or
// the next request for input. The upstream's call stays in flight in
// between, bounded by its call_timeout.

// flightMethods are the requests that may end in an input-required result.
var flightMethods = map[string]bool{"tools/call": true, "prompts/get": true, "resources/read": true}

var (
	errCallEnded   = errors.New("the call ended before the client answered")
	errNotDeclared = errors.New("the client did not declare that it answers this kind of request")
)

// flight is one call of a modern client on a legacy upstream.
type flight struct {
	id    string // what the client's sealed requestState names
	owner string // the principal it belongs to
	op    string // the operation its states are bound to
	caps  *mcp.ClientCapabilities
	call  *call
	// cancel ends the upstream call (deadline, client gone, Close).
	cancel context.CancelFunc
	// done is closed when the upstream call has returned res or err.
	done chan struct{}
	res  mcp.Result
	err  error

	mu       sync.Mutex
	seq      int
	asks     map[string]*ask // the upstream's requests not answered yet, by input request id
	changed  chan struct{}   // closed and replaced when an ask is added
	attached bool            // a client request is waiting on the flight
	// collected is closed once a client request has taken the outcome.
	collected chan struct{}
	taken     bool
}

// ask is one request for input from the upstream, waiting for the client.
type ask struct {
	kind   string // "sampling" or "elicitation"
	req    mcp.InputRequest
	answer chan mcp.InputResponse // buffered: delivery never blocks
}

func newFlight(id, owner, op string, caps *mcp.ClientCapabilities, cl *call, cancel context.CancelFunc) *flight {
	return &flight{id: id, owner: owner, op: op, caps: caps, call: cl, cancel: cancel,
		done: make(chan struct{}), asks: map[string]*ask{}, changed: make(chan struct{}), collected: make(chan struct{})}
}

// ask hands the upstream's request for input to the client and waits for
// its answer, the end of the upstream's request (ctx) or of the call.
func (f *flight) ask(ctx context.Context, kind string, req mcp.InputRequest) (mcp.InputResponse, error) {
	if err := declared(f.caps, kind, req); err != nil {
		return nil, err
	}
	a := &ask{kind: kind, req: req, answer: make(chan mcp.InputResponse, 1)}
	f.mu.Lock()
	f.seq++
	id := kind + "-" + strconv.Itoa(f.seq)
	f.asks[id] = a
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		delete(f.asks, id)
		f.mu.Unlock()
	}()
	select {
	case r := <-a.answer:
		return r, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("await %s answer: %w", kind, ctx.Err())
	case <-f.done:
		return nil, fmt.Errorf("await %s answer: %w", kind, errCallEnded)
	}
}

// round waits, on behalf of one client request (ctx), until the upstream
// call has an outcome (done) or is waiting for input the client has not been
// asked for, or answered (inputs). A client that goes away cancels the call:
// over HTTP, a closed response is the client's cancellation.
func (f *flight) round(ctx context.Context) (inputs mcp.InputRequestMap, err error) {
	for {
		select {
		case <-f.done:
			return nil, nil
		default:
		}
		f.mu.Lock()
		if len(f.asks) > 0 {
			inputs = mcp.InputRequestMap{}
			for id, a := range f.asks {
				inputs[id] = a.req
			}
			f.mu.Unlock()
			return inputs, nil
		}
		changed := f.changed
		f.mu.Unlock()
		select {
		case <-f.done:
		case <-changed:
		case <-ctx.Done():
			f.cancel()
			return nil, ctx.Err()
		}
	}
}

// end cancels the upstream call and waits until it has returned, so that
// the client hears of the cancellation only once the connection is free for
// its next call.
func (f *flight) end() {
	f.cancel()
	<-f.done
}

// attach marks a client request as waiting on the flight; false if one is
// already.
func (f *flight) attach() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.attached {
		return false
	}
	f.attached = true
	return true
}

func (f *flight) detach() {
	f.mu.Lock()
	f.attached = false
	f.mu.Unlock()
}

// take marks the outcome as delivered, so that the flight's owner stops
// holding it for the client.
func (f *flight) take() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.taken {
		f.taken = true
		close(f.collected)
	}
}

// answer hands the client's inputResponses to the requests they answer.
// Every response is checked before any is delivered: a response of the wrong
// kind is the client's error, and the call is not resumed with part of its
// answers. Responses to requests not outstanding (answered, or withdrawn by
// the upstream) are ignored; requests left unanswered are asked again.
func (f *flight) answer(responses mcp.InputResponseMap) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	fitted := map[*ask]mcp.InputResponse{}
	for id, r := range responses {
		a, ok := f.asks[id]
		if !ok {
			continue
		}
		v, err := fitAnswer(a.kind, r)
		if err != nil {
			return invalidParams(fmt.Sprintf("inputResponses[%q]: %v", id, err))
		}
		fitted[a] = v
	}
	for id, a := range f.asks {
		if v, ok := fitted[a]; ok {
			a.answer <- v
			delete(f.asks, id)
		}
	}
	return nil
}

// fitAnswer checks that r answers a request of kind and converts it to the
// type the upstream's request handler returns.
func fitAnswer(kind string, r mcp.InputResponse) (mcp.InputResponse, error) {
	switch kind {
	case "sampling":
		switch v := r.(type) {
		case *mcp.CreateMessageResult:
			return v, nil
		case *mcp.CreateMessageWithToolsResult:
			// The legacy upstream asked with a single-content request.
			if len(v.Content) != 1 {
				return nil, fmt.Errorf("a sampling answer must have exactly one content block, not %d", len(v.Content))
			}
			return &mcp.CreateMessageResult{Meta: v.Meta, Content: v.Content[0], Model: v.Model, Role: v.Role, StopReason: v.StopReason}, nil
		}
	case "elicitation":
		if v, ok := r.(*mcp.ElicitResult); ok {
			return v, nil
		}
	}
	return nil, fmt.Errorf("it does not answer a %s request", kind)
}

// declared refuses a request for input the client did not declare it can
// answer: a server must not ask for it (2026-07-28).
func declared(caps *mcp.ClientCapabilities, kind string, req mcp.InputRequest) error {
	ok := false
	if caps != nil {
		switch kind {
		case "sampling":
			ok = caps.Sampling != nil
		case "elicitation":
			if e := caps.Elicitation; e != nil {
				p, _ := req.(*mcp.ElicitParams)
				if p != nil && p.Mode == "url" {
					ok = e.URL != nil
				} else {
					ok = e.Form != nil || e.URL == nil // {} means form
				}
			}
		}
	}
	if !ok {
		return fmt.Errorf("relay %s: %w", kind, errNotDeclared)
	}
	return nil
}

// pendingCalls is the table of flights a client can resume: bounded in all
// and per principal, since each holds an upstream call open.
type pendingCalls struct {
	max, maxPerOwner int

	mu      sync.Mutex
	byID    map[string]*flight
	byOwner map[string]int
}

func newPendingCalls(max, maxPerOwner int) *pendingCalls {
	return &pendingCalls{max: max, maxPerOwner: maxPerOwner, byID: map[string]*flight{}, byOwner: map[string]int{}}
}

// add records f (once); past a cap it refuses with an error for the client.
func (p *pendingCalls) add(f *flight, upstream string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.byID[f.id]; ok {
		return nil
	}
	switch {
	case p.byOwner[f.owner] >= p.maxPerOwner:
		return &jsonrpc.Error{Code: CodeUnavailable, Message: fmt.Sprintf(
			"upstream %q asked for input, but this principal already has %d calls awaiting input (limits.per_principal.concurrent); the call was cancelled: answer or let expire one of the others, then call again",
			upstream, p.byOwner[f.owner])}
	case len(p.byID) >= p.max:
		return &jsonrpc.Error{Code: CodeUnavailable, Message: fmt.Sprintf(
			"upstream %q asked for input, but %d calls already await input (limits.concurrent_total); the call was cancelled: retry later", upstream, len(p.byID))}
	}
	p.byID[f.id] = f
	p.byOwner[f.owner]++
	return nil
}

func (p *pendingCalls) get(id string) *flight {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.byID[id]
}

func (p *pendingCalls) remove(f *flight) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.byID[f.id] != f {
		return
	}
	delete(p.byID, f.id)
	if p.byOwner[f.owner]--; p.byOwner[f.owner] <= 0 {
		delete(p.byOwner, f.owner)
	}
}

// newFlightID names a flight; it travels only inside a sealed state.
func newFlightID() string { return rand.Text() }
