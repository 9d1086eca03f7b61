package upstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Restart backoff: the first retry after a crash waits about initialBackoff,
// each further one twice as long up to maxBackoff, and a connection that
// stayed up for stableAfter resets it. Every wait is jittered by ±25% so a
// fleet of crashed children does not restart in lockstep.
const (
	initialBackoff = 250 * time.Millisecond
	maxBackoff     = 30 * time.Second
	stableAfter    = 30 * time.Second
	// connectTimeout bounds one attempt: spawn (or dial) and MCP handshake.
	connectTimeout = 30 * time.Second
)

// state is where an instance is in its life.
type state int

const (
	starting state = iota // a connection attempt is under way: callers wait for it
	up                    // connected: callers use it
	down                  // the last attempt failed or the session ended: callers fail fast
	stopped               // closed for good
)

// instance is one supervised connection to an upstream: one child process or
// one remote session. Its run loop reconnects after a crash, with backoff.
type instance struct {
	up     *Upstream
	owner  string // the principal it serves; "" when shared (or the catalog's)
	logger *slog.Logger

	mu       sync.Mutex
	state    state
	cs       *mcp.ClientSession // set while up
	lastErr  error              // why it is down
	retryAt  time.Time          // when the next attempt starts, while down
	changed  chan struct{}      // closed and replaced on every state change
	inflight int                // calls using it now
	lastUsed time.Time
	gate     *relayGate // of the current connection

	stop context.CancelFunc
	done chan struct{} // closed when run returns
}

func newInstance(u *Upstream, owner string) *instance {
	logger := u.logger
	if owner != "" {
		logger = logger.With("instance_owner", owner)
	}
	return &instance{up: u, owner: owner, logger: logger, changed: make(chan struct{}), lastUsed: time.Now(), done: make(chan struct{})}
}

// start runs the supervisor under ctx; stop (or ctx) ends it.
func (in *instance) start(ctx context.Context) {
	ctx, in.stop = context.WithCancel(ctx)
	go in.run(ctx)
}

// close stops the instance and waits for its connection (and child) to end.
func (in *instance) close() {
	in.stop()
	<-in.done
}

func (in *instance) setState(s state, cs *mcp.ClientSession, err error, retryAt time.Time) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.state, in.cs, in.lastErr, in.retryAt = s, cs, err, retryAt
	close(in.changed)
	in.changed = make(chan struct{})
}

// run connects, waits for the session to end, and reconnects with backoff
// until ctx is done. It owns the session and closes it before returning.
func (in *instance) run(ctx context.Context) {
	defer close(in.done)
	backoff := initialBackoff
	for {
		in.setState(starting, nil, nil, time.Time{})
		cs, err := in.connect(ctx)
		if err == nil {
			connected := time.Now()
			in.logger.Info("upstream connected", "protocol_version", cs.InitializeResult().ProtocolVersion)
			// The catalog is synced before callers see the session, so a
			// boot that waits for "up" also waits for the tools to be listed.
			in.up.connected(ctx, in, cs)
			in.setState(up, cs, nil, time.Time{})
			err = waitSession(ctx, cs)
			in.up.disconnected(cs)
			if time.Since(connected) >= stableAfter {
				backoff = initialBackoff
			}
		}
		if ctx.Err() != nil {
			in.setState(stopped, nil, errors.New("stopped"), time.Time{})
			return
		}
		wait := jitter(backoff)
		backoff = min(2*backoff, maxBackoff)
		in.up.metrics.UpstreamRestart(in.up.spec.Name)
		in.logger.Warn("upstream unavailable; restarting", "error", err, "retry_in", wait.Round(time.Millisecond))
		in.setState(down, nil, err, time.Now().Add(wait))
		select {
		case <-ctx.Done():
			in.setState(stopped, nil, errors.New("stopped"), time.Time{})
			return
		case <-time.After(wait):
		}
	}
}

// connect makes one connection attempt.
func (in *instance) connect(ctx context.Context) (*mcp.ClientSession, error) {
	info, err := in.up.instanceInfo(in.owner)
	if err != nil {
		return nil, err
	}
	info.gate = newRelayGate(in.logger)
	info.limitKill = func(limit string) { in.up.metrics.SandboxLimitKill(in.up.spec.Name, limit) }
	in.mu.Lock()
	in.gate = info.gate
	in.mu.Unlock()
	transport, err := in.up.spec.Dial(ctx, info)
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	var opts *mcp.ClientSessionOptions
	if v := in.up.spec.Protocol; v != "" {
		opts = &mcp.ClientSessionOptions{ProtocolVersion: v}
	}
	cs, err := in.up.client.Connect(cctx, transport, opts)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	return cs, nil
}

// waitSession returns when the session ends (the child exited, the remote
// closed it) or ctx is done; either way the session is closed on return,
// which for a child means stdin closed, then SIGTERM, then SIGKILL.
func waitSession(ctx context.Context, cs *mcp.ClientSession) error {
	stop := context.AfterFunc(ctx, func() { cs.Close() })
	defer stop()
	err := cs.Wait()
	cs.Close()
	if err == nil {
		err = errors.New("session ended")
	}
	return fmt.Errorf("session ended: %w", err)
}

// jitter spreads d by ±25%.
func jitter(d time.Duration) time.Duration {
	return d*3/4 + rand.N(d/2+1)
}

// session returns the live session, waiting for a connection attempt in
// progress (bounded by ctx). When the instance is down it fails at once:
// a caller learns now that the upstream is unavailable, rather than after
// its timeout. acquire marks the instance in use; the caller calls release.
func (in *instance) acquire(ctx context.Context) (*mcp.ClientSession, error) {
	for {
		in.mu.Lock()
		switch in.state {
		case up:
			in.inflight++
			in.lastUsed = time.Now()
			cs := in.cs
			in.mu.Unlock()
			return cs, nil
		case down:
			err := unavailable(in.up.spec.Name, fmt.Sprintf("it failed and is being restarted (next attempt in %s)",
				time.Until(in.retryAt).Round(time.Second)))
			in.mu.Unlock()
			return nil, err
		case stopped:
			in.mu.Unlock()
			return nil, unavailable(in.up.spec.Name, "it is shutting down")
		}
		changed := in.changed
		in.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, unavailable(in.up.spec.Name, "it did not start in time")
		}
	}
}

func (in *instance) release() {
	in.mu.Lock()
	in.inflight--
	in.lastUsed = time.Now()
	in.mu.Unlock()
}

// idleSince reports whether the instance has no call in flight and has not
// been used since before t.
func (in *instance) idleSince(t time.Time) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.inflight == 0 && in.lastUsed.Before(t)
}

// current returns the live session without waiting, or nil.
func (in *instance) current() *mcp.ClientSession {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.cs
}

// awaitUp waits until the instance is up (true) or its first attempt failed
// or ctx ended (false).
func (in *instance) awaitUp(ctx context.Context) bool {
	for {
		in.mu.Lock()
		s, changed := in.state, in.changed
		in.mu.Unlock()
		switch s {
		case up:
			return true
		case down, stopped:
			return false
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return false
		}
	}
}
