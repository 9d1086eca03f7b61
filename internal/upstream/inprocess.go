package upstream

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpgate/mcpgate/internal/demo"
	"github.com/mcpgate/mcpgate/internal/logs"
)

// inProcessDialer serves builtin upstream name inside the gateway
// (insecure_in_process): each instance is a fresh demo server speaking
// stdio over a pair of in-memory pipes, exactly as the child does over its
// real ones, so the gateway's side (the SDK client, the id guard, the relay
// gate) is the one every stdio upstream gets. Only the process boundary
// and the sandbox are missing, which the config's name says.
func inProcessDialer(logger *slog.Logger) func(context.Context, Instance) (mcp.Transport, error) {
	return func(_ context.Context, inst Instance) (mcp.Transport, error) {
		return &inProcessTransport{inst: inst, logger: logger}, nil
	}
}

type inProcessTransport struct {
	inst   Instance
	logger *slog.Logger
}

func (t *inProcessTransport) Connect(ctx context.Context) (mcp.Connection, error) {
	serverIn, clientOut := io.Pipe()
	clientIn, serverOut := io.Pipe()
	// The demo logs what the child would write to its stderr (warnings).
	d := demo.New(slog.New(logs.MinLevel(t.logger.Handler(), slog.LevelWarn)))
	serverCtx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		err := d.ServeStdio(serverCtx, serverIn, serverOut)
		if err != nil {
			t.logger.Warn("in-process upstream stopped", "err", err)
		}
		// As a child's exit closes its stdout: the client reads EOF.
		serverOut.CloseWithError(io.EOF)
		serverIn.CloseWithError(io.ErrClosedPipe)
	}()
	conn, err := (&mcp.IOTransport{Reader: clientIn, Writer: clientOut}).Connect(ctx)
	if err != nil {
		clientOut.Close()
		clientIn.Close()
		stop()
		<-done
		return nil, err
	}
	return &inProcessConn{Connection: newIDGuard(conn, t.inst.gate, t.logger), stop: stop, done: done}, nil
}

// inProcessConn stops its server when the gateway closes the connection,
// and waits for it: no goroutine outlives the instance.
type inProcessConn struct {
	mcp.Connection
	stop context.CancelFunc
	done chan struct{}
	once sync.Once
}

func (c *inProcessConn) Close() error {
	err := c.Connection.Close() // closes the client's pipe ends: the server reads EOF
	c.once.Do(func() {
		c.stop()
		<-c.done
	})
	if errors.Is(err, io.ErrClosedPipe) {
		err = nil
	}
	return err
}
