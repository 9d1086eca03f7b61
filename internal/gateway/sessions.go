package gateway

import (
	"context"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// sessionHost is what the session table needs of the SDK: the ids of the
// sessions still open, and a way to end one.
type sessionHost interface {
	liveSessions() map[string]bool
	endSession(id string)
}

// sdkSessions is the sessionHost of the gateway's *mcp.Server: its sessions
// with an id are the legacy era's (stateless requests have none).
type sdkSessions struct{ server *mcp.Server }

func (s sdkSessions) liveSessions() map[string]bool {
	live := map[string]bool{}
	for ss := range s.server.Sessions() {
		if id := ss.ID(); id != "" {
			live[id] = true
		}
	}
	return live
}

func (s sdkSessions) endSession(id string) {
	for ss := range s.server.Sessions() {
		if ss.ID() == id {
			ss.Close() // the SDK forgets it: its id answers 404, and the client starts anew
			return
		}
	}
}

// sessionTable caps the legacy-era sessions in total and per principal. A
// new session past a cap takes the place of the oldest idle one (no request
// or event stream in progress, unused for longest), which is ended; with
// none idle it is refused. So one principal cannot hold the gateway's
// session memory, and a forgetful client's abandoned sessions make room
// rather than lock others out until their idle timeout.
type sessionTable struct {
	total, perPrincipal int
	host                sessionHost
	now                 func() time.Time

	mu        sync.Mutex
	sessions  map[string]*sessionEntry // by id: the sessions this table let in
	pending   int                      // admitted, not yet created
	pendingBy map[string]int           // the same, by owner
}

type sessionEntry struct {
	owner    string
	lastUsed time.Time
	busy     int // requests and event streams in progress
}

func newSessionTable(total, perPrincipal int, host sessionHost, now func() time.Time) *sessionTable {
	if now == nil {
		now = time.Now
	}
	return &sessionTable{total: total, perPrincipal: perPrincipal, host: host, now: now,
		sessions: map[string]*sessionEntry{}, pendingBy: map[string]int{}}
}

// admit decides on a request that would create a session for owner. If it
// may go ahead, created must be called once the request is served, with the
// id the SDK gave the new session ("" if none was made); evicted lists the
// sessions ended to make room, for the log.
func (t *sessionTable) admit(owner string) (created func(id string), evicted []string, ok bool) {
	live := t.host.liveSessions()
	t.mu.Lock()
	for id := range t.sessions {
		if !live[id] {
			delete(t.sessions, id) // ended by DELETE, idle timeout or shutdown
		}
	}
	mine := t.pendingBy[owner]
	for _, e := range t.sessions {
		if e.owner == owner {
			mine++
		}
	}
	if mine >= t.perPrincipal {
		id, found := t.oldestIdle(func(e *sessionEntry) bool { return e.owner == owner })
		if !found {
			t.mu.Unlock()
			return nil, nil, false
		}
		delete(t.sessions, id)
		evicted = append(evicted, id)
	}
	if len(t.sessions)+t.pending >= t.total {
		id, found := t.oldestIdle(func(*sessionEntry) bool { return true })
		if !found {
			t.mu.Unlock()
			// A session evicted above is gone already; the caller is refused
			// all the same, and the log names it.
			t.end(evicted)
			return nil, evicted, false
		}
		delete(t.sessions, id)
		evicted = append(evicted, id)
	}
	t.pending++
	t.pendingBy[owner]++
	t.mu.Unlock()
	t.end(evicted)
	var once sync.Once
	return func(id string) {
		once.Do(func() {
			t.mu.Lock()
			defer t.mu.Unlock()
			t.pending--
			if t.pendingBy[owner]--; t.pendingBy[owner] == 0 {
				delete(t.pendingBy, owner)
			}
			if id != "" {
				t.sessions[id] = &sessionEntry{owner: owner, lastUsed: t.now()}
			}
		})
	}, evicted, true
}

// oldestIdle finds the idle session, among those match accepts, unused for
// longest. The caller holds t.mu.
func (t *sessionTable) oldestIdle(match func(*sessionEntry) bool) (string, bool) {
	var best string
	var bestAt time.Time
	for id, e := range t.sessions {
		if e.busy > 0 || !match(e) {
			continue
		}
		if best == "" || e.lastUsed.Before(bestAt) || (e.lastUsed.Equal(bestAt) && id < best) {
			best, bestAt = id, e.lastUsed
		}
	}
	return best, best != ""
}

// end ends the evicted sessions, outside t.mu: the SDK calls back into its
// own handler's lock when a session closes.
func (t *sessionTable) end(ids []string) {
	for _, id := range ids {
		t.host.endSession(id)
	}
}

// use marks session id busy for the duration of one request or event
// stream; the returned done marks it idle again.
func (t *sessionTable) use(id string) (done func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.sessions[id]
	if !ok {
		return func() {}
	}
	e.busy++
	e.lastUsed = t.now()
	var once sync.Once
	return func() {
		once.Do(func() {
			t.mu.Lock()
			defer t.mu.Unlock()
			e.busy--
			e.lastUsed = t.now()
		})
	}
}

// streams tracks the legacy GET event streams open, so that a drain can end
// them at its start: a stream has no end of its own, and left open it would
// hold the shutdown until the grace period is over.
type streams struct {
	mu      sync.Mutex
	cancels map[*int]context.CancelFunc
	ended   bool
}

// begin registers a stream served under ctx; ok is false once the drain
// has begun. done must be called when the stream ends.
func (s *streams) begin(ctx context.Context) (streamCtx context.Context, done func(), ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return nil, nil, false
	}
	if s.cancels == nil {
		s.cancels = map[*int]context.CancelFunc{}
	}
	streamCtx, cancel := context.WithCancel(ctx)
	key := new(int)
	s.cancels[key] = cancel
	return streamCtx, func() {
		s.mu.Lock()
		delete(s.cancels, key)
		s.mu.Unlock()
		cancel()
	}, true
}

// end ends every open stream and refuses new ones.
func (s *streams) end() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ended = true
	for _, cancel := range s.cancels {
		cancel()
	}
}
