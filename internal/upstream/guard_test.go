package upstream

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// scriptedConn is a Connection whose reads come from a script.
type scriptedConn struct {
	reads []jsonrpc.Message
}

func (c *scriptedConn) Read(context.Context) (jsonrpc.Message, error) {
	if len(c.reads) == 0 {
		return nil, io.EOF
	}
	m := c.reads[0]
	c.reads = c.reads[1:]
	return m, nil
}
func (c *scriptedConn) Write(context.Context, jsonrpc.Message) error { return nil }
func (c *scriptedConn) Close() error                                 { return nil }
func (c *scriptedConn) SessionID() string                            { return "" }

var _ mcp.Connection = (*scriptedConn)(nil)

func TestIDGuardDropsResponsesItDidNotAskFor(t *testing.T) {
	id := func(n int64) jsonrpc.ID { v, _ := jsonrpc.MakeID(float64(n)); return v }
	resp := func(n int64) *jsonrpc.Response { return &jsonrpc.Response{ID: id(n), Result: []byte(`{}`)} }
	note := &jsonrpc.Request{Method: "notifications/message"}
	conn := &scriptedConn{reads: []jsonrpc.Message{resp(99), resp(1), resp(1), note, resp(2)}}
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	g := newIDGuard(conn, newRelayGate(logger), logger)
	ctx := context.Background()
	for _, n := range []int64{1, 2} {
		if err := g.Write(ctx, &jsonrpc.Request{ID: id(n), Method: "tools/call"}); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for {
		m, err := g.Read(ctx)
		if err != nil {
			break
		}
		switch m := m.(type) {
		case *jsonrpc.Response:
			got = append(got, fmt.Sprint("response ", m.ID.Raw()))
		case *jsonrpc.Request:
			got = append(got, m.Method)
		}
	}
	// The first answer to each issued id and the notification pass; the
	// answer to an id never issued (99) and a second answer to 1 do not.
	if want := "[response 1 notifications/message response 2]"; fmt.Sprint(got) != want {
		t.Fatalf("passed %v, want the first answer to each issued id and the notification", got)
	}
	if n := strings.Count(logs.String(), "upstream response dropped"); n != 2 {
		t.Errorf("%d drops logged, want 2 (an unissued id and a repeated answer):\n%s", n, logs.String())
	}
}
