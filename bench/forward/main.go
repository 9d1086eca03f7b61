// Command forward is the benchmark's ceiling: the least a gateway in front of
// a stdio MCP server can do per call. It runs the upstream command as a child
// (the demo by default, as mcpgate's embedded default does), speaks
// 2025-11-25 to it over one stdio connection, and for every tools/call that
// arrives over HTTP decodes the JSON-RPC message once, writes it to the child
// with an id of its own, and hands the child's answer back with the caller's
// id. It checks nothing: no authentication, policy, schema, limits or audit,
// no Host/Origin guard, no SSE, no server-to-client messages. It is not a
// gateway and must never front anything but a benchmark.
//
// bench/run.sh --forwarder measures it against the bare server in place of
// mcpgate: what no implementation of the same architecture (an HTTP front,
// the tool server in a process of its own) can beat on this machine.
//
// Both eras are served on one path: a POST of initialize gets a canned
// 2025-11-25 result and a session id, notifications get 202, DELETE gets
// 204, tools/call (with or without a session) is forwarded.
//
// -server sdk and -client sdk swap either side for the MCP Go SDK (its
// Streamable HTTP handler and server, its stdio client session), the two
// hops mcpgate is built on, so that bench/run.sh --forwarder-args can
// measure what each costs on its own. With -server sdk the 2025-11-25 era is
// served on /legacy and 2026-07-28 on /modern, as bench/bare does.
//
// It prints "listening on http://ADDR" on stdout once it accepts connections.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address (port 0 picks a free port)")
	serverSide := flag.String("server", "raw", "raw (decode once, answer JSON) or sdk (the go-sdk's Streamable HTTP handler and server)")
	clientSide := flag.String("client", "raw", "raw (one stdio pipe, ids renumbered) or sdk (the go-sdk's stdio client session)")
	flag.Parse()
	argv := flag.Args()
	if len(argv) == 0 {
		fmt.Fprintln(os.Stderr, "usage: forward [-addr ADDR] COMMAND [ARG...] (the stdio MCP server, e.g. mcpgate demo)")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *addr, *serverSide, *clientSide, argv); err != nil {
		fmt.Fprintf(os.Stderr, "forward: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, addr, serverSide, clientSide string, argv []string) error {
	var (
		up  caller
		err error
	)
	switch clientSide {
	case "raw":
		up, err = startUpstream(ctx, argv)
	case "sdk":
		up, err = startSDKUpstream(ctx, argv)
	default:
		return fmt.Errorf("-client: %q is neither raw nor sdk", clientSide)
	}
	if err != nil {
		return err
	}
	defer up.close()
	var h http.Handler
	switch serverSide {
	case "raw":
		h = &rawFront{up: up}
	case "sdk":
		if h, err = sdkFront(ctx, up); err != nil {
			return err
		}
	default:
		return fmt.Errorf("-server: %q is neither raw nor sdk", serverSide)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: h}
	fmt.Printf("listening on http://%s\n", ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
		_ = srv.Close()
		<-errc
		return nil
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	}
}

// message is what forward reads of any JSON-RPC message, once.
type message struct {
	ID     json.RawMessage  `json:"id,omitempty"`
	Method string           `json:"method,omitempty"`
	Params json.RawMessage  `json:"params,omitempty"`
	Result json.RawMessage  `json:"result,omitempty"`
	Error  *json.RawMessage `json:"error,omitempty"`
}

// caller is the upstream side: one request, its response, raw.
type caller interface {
	call(ctx context.Context, method string, params json.RawMessage) (message, error)
	close()
}

// upstream is one stdio connection to the child, shared by every caller.
type upstream struct {
	cmd *exec.Cmd
	in  io.WriteCloser

	writeMu sync.Mutex
	w       *bufio.Writer

	mu      sync.Mutex
	nextID  int64
	pending map[int64]chan message
	err     error // set once the child's stdout ends
}

func startUpstream(ctx context.Context, argv []string) (*upstream, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("open child stdin: %w", err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("open child stdout: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", argv[0], err)
	}
	u := &upstream{cmd: cmd, in: in, w: bufio.NewWriter(in), pending: map[int64]chan message{}}
	go u.readLoop(out)
	init := json.RawMessage(`{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"forward","version":"0"}}`)
	if _, err := u.call(ctx, "initialize", init); err != nil {
		u.close()
		return nil, fmt.Errorf("initialize upstream: %w", err)
	}
	if err := u.write([]byte(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)); err != nil {
		u.close()
		return nil, fmt.Errorf("notify upstream: %w", err)
	}
	return u, nil
}

func (u *upstream) close() {
	_ = u.in.Close()
	_ = u.cmd.Wait()
}

// readLoop routes each response from the child to its waiting caller;
// anything else the child sends (notifications, requests) is dropped.
func (u *upstream) readLoop(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		var m message
		if json.Unmarshal(sc.Bytes(), &m) != nil || m.Method != "" {
			continue
		}
		id, err := strconv.ParseInt(string(m.ID), 10, 64)
		if err != nil {
			continue
		}
		u.mu.Lock()
		ch := u.pending[id]
		delete(u.pending, id)
		u.mu.Unlock()
		if ch != nil {
			ch <- m
		}
	}
	u.mu.Lock()
	u.err = errors.New("upstream closed its stdout")
	for id, ch := range u.pending {
		delete(u.pending, id)
		close(ch)
	}
	u.mu.Unlock()
}

func (u *upstream) write(line []byte) error {
	u.writeMu.Lock()
	defer u.writeMu.Unlock()
	u.w.Write(line)
	u.w.WriteByte('\n')
	return u.w.Flush()
}

// forget drops a request nobody will wait for any more.
func (u *upstream) forget(id int64) {
	u.mu.Lock()
	delete(u.pending, id)
	u.mu.Unlock()
}

// call sends one request to the child and waits for its response.
func (u *upstream) call(ctx context.Context, method string, params json.RawMessage) (message, error) {
	ch := make(chan message, 1)
	u.mu.Lock()
	if u.err != nil {
		u.mu.Unlock()
		return message{}, u.err
	}
	u.nextID++
	id := u.nextID
	u.pending[id] = ch
	u.mu.Unlock()
	req, err := json.Marshal(message{ID: json.RawMessage(strconv.FormatInt(id, 10)), Method: method, Params: params})
	if err != nil {
		u.forget(id)
		return message{}, fmt.Errorf("encode request: %w", err)
	}
	req = append([]byte(`{"jsonrpc":"2.0",`), req[1:]...)
	if err := u.write(req); err != nil {
		u.forget(id)
		return message{}, fmt.Errorf("write to upstream: %w", err)
	}
	select {
	case m, ok := <-ch:
		if !ok {
			return message{}, errors.New("upstream closed its stdout")
		}
		return m, nil
	case <-ctx.Done():
		u.forget(id)
		return message{}, ctx.Err()
	}
}

// rawFront is the HTTP side without the SDK.
type rawFront struct{ up caller }

func (f *rawFront) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodDelete:
		w.WriteHeader(http.StatusNoContent)
		return
	case http.MethodPost:
	default:
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 4<<20))
	if err != nil {
		http.Error(w, "read body", http.StatusBadRequest)
		return
	}
	var m message
	if err := json.Unmarshal(body, &m); err != nil {
		http.Error(w, "decode body", http.StatusBadRequest)
		return
	}
	switch {
	case m.ID == nil:
		w.WriteHeader(http.StatusAccepted)
	case m.Method == "initialize":
		w.Header().Set("Mcp-Session-Id", "forward")
		reply(w, message{ID: m.ID, Result: json.RawMessage(
			`{"protocolVersion":"2025-11-25","capabilities":{"tools":{}},"serverInfo":{"name":"forward","version":"0"}}`)})
	default:
		res, err := f.up.call(r.Context(), m.Method, m.Params)
		if err != nil {
			http.Error(w, "upstream: "+err.Error(), http.StatusBadGateway)
			return
		}
		res.ID = m.ID
		reply(w, res)
	}
}

func reply(w http.ResponseWriter, m message) {
	b, err := json.Marshal(m)
	if err != nil {
		http.Error(w, "encode response", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(append([]byte(`{"jsonrpc":"2.0",`), b[1:]...))
}
