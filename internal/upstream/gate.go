package upstream

import (
	"bytes"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/mcpgate/mcpgate/internal/strictjson"
)

// The SDK reads an upstream's messages in order but hands notifications to
// a handler goroutine while it completes calls at once. A progress report or
// log message sent just before a call's answer could therefore reach the
// relay after the client's call had ended, and be lost (for a legacy client,
// its POST's event stream is closed by then). A relayGate restores the
// order: the transport counts each such notification as it reads it, the
// relay marks it done, and the transport holds a response back until the
// count is zero.

// gateTimeout bounds how long a response is held. A notification the SDK
// drops without calling the relay (undecodable params) would otherwise hold
// every later response; past the timeout the count is reset and logged.
const gateTimeout = time.Second

// relayGate counts the notifications read from one connection and not yet
// relayed.
type relayGate struct {
	logger  *slog.Logger
	mu      sync.Mutex
	pending int
	idle    chan struct{} // closed while pending is zero

	relayedAll bool // tests: count nothing, as if every notification were relayed at once
}

func newRelayGate(logger *slog.Logger) *relayGate {
	idle := make(chan struct{})
	close(idle)
	return &relayGate{logger: logger, idle: idle}
}

// queued counts a notification the transport has read.
func (g *relayGate) queued() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.relayedAll {
		return
	}
	if g.pending == 0 {
		g.idle = make(chan struct{})
	}
	g.pending++
}

// relayed marks one counted notification as handled.
func (g *relayGate) relayed() {
	if g == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.pending == 0 {
		return
	}
	g.pending--
	if g.pending == 0 {
		close(g.idle)
	}
}

// wait returns when every counted notification has been handled, or after
// gateTimeout.
func (g *relayGate) wait() {
	g.mu.Lock()
	idle := g.idle
	g.mu.Unlock()
	select {
	case <-idle:
	case <-time.After(gateTimeout):
		g.mu.Lock()
		if g.pending > 0 {
			g.logger.Warn("upstream notifications not relayed in time; answer released", "pending", g.pending)
			g.pending = 0
			close(g.idle)
		}
		g.mu.Unlock()
	}
}

// gated reports whether a notification method is counted: those relayed
// into a call in flight.
func gated(method string) bool {
	return method == "notifications/progress" || method == "notifications/message"
}

// sseGate wraps an upstream's event stream: it counts gated notifications as
// their events pass and holds each response event's end until the gate is
// idle. Bytes pass through unchanged.
type sseGate struct {
	body io.ReadCloser
	gate *relayGate
	buf  []byte // one read from body, reused
	in   []byte // read, not yet split into lines
	out  []byte // released to the reader
	data []byte // the current event's data
	err  error
}

func (s *sseGate) Close() error { return s.body.Close() }

func (s *sseGate) Read(p []byte) (int, error) {
	for len(s.out) == 0 {
		if s.lines() {
			continue
		}
		if s.err != nil {
			if len(s.in) > 0 { // an unterminated last line
				s.out, s.in = s.in, nil
				break
			}
			return 0, s.err
		}
		if s.buf == nil {
			s.buf = make([]byte, 4096)
		}
		n, err := s.body.Read(s.buf)
		s.in = append(s.in, s.buf[:n]...)
		s.err = err
	}
	n := copy(p, s.out)
	s.out = s.out[n:]
	return n, nil
}

// lines moves complete lines from in to out, acting on event ends, and
// reports whether it moved any. It stops before the end of a response event
// while earlier bytes are still unread: the notifications in them must reach
// the SDK before the gate can see them relayed.
func (s *sseGate) lines() bool {
	moved := false
	for {
		i := bytes.IndexByte(s.in, '\n')
		if i < 0 {
			return moved
		}
		line := s.in[:i+1]
		text := bytes.TrimRight(line, "\r\n")
		switch {
		case len(text) == 0:
			kind := s.classify()
			if kind == eventResponse && len(s.out) > 0 {
				return moved // release what precedes it first
			}
			switch kind {
			case eventResponse:
				s.gate.wait()
			case eventGated:
				s.gate.queued()
			}
			s.data = s.data[:0]
		case bytes.HasPrefix(text, []byte("data:")):
			s.data = append(s.data, bytes.TrimPrefix(bytes.TrimPrefix(text, []byte("data:")), []byte(" "))...)
		}
		s.out = append(s.out, line...)
		s.in = s.in[i+1:]
		moved = true
	}
}

// Kinds of event, for the gate.
const (
	eventOther = iota
	eventResponse
	eventGated
)

// classify names the kind of the event whose data has been collected. The
// strict JSON gate's scanner reads just the routing of the message, without
// decoding the rest (a result may be large); its limits are lifted, as the
// SDK decodes the event whatever its size. Data it refuses (not one strict
// JSON-RPC message) is "other": the kind only orders relaying, and the SDK
// makes of such data what it will.
func (s *sseGate) classify() int {
	if len(s.data) == 0 {
		return eventOther
	}
	msg, err := strictjson.ParseMessage(s.data, eventLimits(len(s.data)))
	if err != nil {
		return eventOther
	}
	switch {
	case msg.Kind == strictjson.Response:
		return eventResponse
	case msg.Kind == strictjson.Notification && gated(msg.Method):
		return eventGated
	}
	return eventOther
}

// eventLimits are limits no event of n bytes can exceed.
func eventLimits(n int) strictjson.Limits {
	return strictjson.Limits{MaxBytes: n, MaxDepth: n, MaxStringBytes: n, MaxObjectMembers: n, MaxArrayLen: n}
}
