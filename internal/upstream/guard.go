package upstream

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpgate/mcpgate/internal/sandbox"
)

// maxOutstanding bounds the request ids an idGuard remembers; past it the
// connection is failing to answer, and the oldest are forgotten.
const maxOutstanding = 65536

// idGuard sits between the SDK and a child's stdio. It remembers the ids of
// the requests the gateway sent, and drops (and logs) any response whose id
// it did not issue or that was already answered: a confused or hostile
// server cannot complete a call it was never asked, or answer one twice.
type idGuard struct {
	mcp.Connection
	logger *slog.Logger
	gate   *relayGate

	mu          sync.Mutex
	outstanding map[any]bool
}

func newIDGuard(conn mcp.Connection, gate *relayGate, logger *slog.Logger) *idGuard {
	return &idGuard{Connection: conn, gate: gate, logger: logger, outstanding: map[any]bool{}}
}

func (g *idGuard) Write(ctx context.Context, msg jsonrpc.Message) error {
	if req, ok := msg.(*jsonrpc.Request); ok && req.IsCall() {
		g.mu.Lock()
		if len(g.outstanding) >= maxOutstanding {
			clear(g.outstanding)
		}
		g.outstanding[req.ID.Raw()] = true
		g.mu.Unlock()
	}
	return g.Connection.Write(ctx, msg)
}

func (g *idGuard) Read(ctx context.Context) (jsonrpc.Message, error) {
	for {
		msg, err := g.Connection.Read(ctx)
		if err != nil {
			return nil, err
		}
		if req, ok := msg.(*jsonrpc.Request); ok {
			if !req.IsCall() && gated(req.Method) {
				g.gate.queued()
			}
			return msg, nil
		}
		resp, ok := msg.(*jsonrpc.Response)
		if !ok {
			return msg, nil
		}
		g.mu.Lock()
		issued := g.outstanding[resp.ID.Raw()]
		delete(g.outstanding, resp.ID.Raw())
		g.mu.Unlock()
		if issued {
			// The notifications read before it are relayed first.
			g.gate.wait()
			return msg, nil
		}
		g.logger.Warn("upstream response dropped: the gateway issued no such request id", "id", fmt.Sprint(resp.ID.Raw()))
	}
}

// childCloser finishes the child once the connection is closed (the SDK has
// by then waited for the child itself): what is left of its process group
// is killed, its sandbox released, and a resource limit that killed it
// counted.
type childCloser struct {
	mcp.Connection
	child     *sandbox.Child
	limitKill func(limit string)
	once      sync.Once
}

func (k *childCloser) Close() error {
	err := k.Connection.Close()
	k.once.Do(func() {
		if exit := k.child.Finish(); exit.Limit != "" && k.limitKill != nil {
			k.limitKill(exit.Limit)
		}
	})
	return err
}
