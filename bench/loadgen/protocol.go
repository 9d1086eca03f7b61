package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// Protocol constants for the two Streamable HTTP eras the generator speaks.
const (
	eraLegacy = "legacy"
	eraModern = "modern"

	legacyVersion = "2025-11-25"
	modernVersion = "2026-07-28"

	clientName    = "mcpgate-loadgen"
	clientVersion = "0.1.0"
)

// session is one worker's view of the server: in the legacy era it owns an
// Mcp-Session-Id, in the modern era it is only a set of per-request headers.
// A session is used by one goroutine at a time.
type session struct {
	client    *http.Client
	url       string
	key       string
	era       string
	tool      string
	params    []byte // pre-encoded tools/call params; only the id changes per call
	sessionID string
	nextID    int64
}

// newSession prepares a session around pre-encoded tools/call params; it does
// no I/O (see open).
func newSession(client *http.Client, cfg Config, params []byte) *session {
	return &session{
		client: client,
		url:    cfg.URL,
		key:    cfg.Key,
		era:    cfg.Era,
		tool:   cfg.Tool,
		params: params,
	}
}

// toolCallParams encodes the tools/call params once, so the hot loop only
// splices in a request id instead of re-marshalling the arguments.
func toolCallParams(era, tool string, args json.RawMessage) ([]byte, error) {
	p := map[string]any{"name": tool, "arguments": args}
	if era == eraModern {
		// 2026-07-28 has no handshake: every request carries version and
		// capabilities in _meta, and the server must match them to the headers.
		p["_meta"] = map[string]any{
			"io.modelcontextprotocol/protocolVersion":    modernVersion,
			"io.modelcontextprotocol/clientCapabilities": map[string]any{},
			"io.modelcontextprotocol/clientInfo":         map[string]any{"name": clientName, "version": clientVersion},
		}
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("encode tools/call params: %w", err)
	}
	return b, nil
}

// open performs the legacy handshake (initialize + notifications/initialized).
// The modern era is stateless, so there is nothing to open.
func (s *session) open(ctx context.Context) error {
	if s.era != eraLegacy {
		return nil
	}
	params, err := json.Marshal(map[string]any{
		"protocolVersion": legacyVersion,
		"capabilities":    map[string]any{},
		"clientInfo":      map[string]any{"name": clientName, "version": clientVersion},
	})
	if err != nil {
		return fmt.Errorf("encode initialize params: %w", err)
	}
	id := s.id()
	resp, err := s.post(ctx, rpcRequest(id, "initialize", params), "initialize")
	if err != nil {
		return fmt.Errorf("post initialize: %w", err)
	}
	sid := resp.Header.Get("Mcp-Session-Id")
	result, err := readResult(resp, id)
	if err != nil {
		return fmt.Errorf("initialize: %w", err)
	}
	if err := checkInitializeResult(result); err != nil {
		return err
	}
	if sid == "" {
		return fmt.Errorf("initialize: server returned no Mcp-Session-Id")
	}
	s.sessionID = sid
	return s.notifyInitialized(ctx)
}

// checkInitializeResult makes sure the server agreed to 2025-11-25; any other
// version would make every later MCP-Protocol-Version header a lie.
func checkInitializeResult(result json.RawMessage) error {
	var r struct {
		ProtocolVersion string `json:"protocolVersion"`
	}
	if err := json.Unmarshal(result, &r); err != nil {
		return fmt.Errorf("decode initialize result: %w", err)
	}
	if r.ProtocolVersion != legacyVersion {
		return fmt.Errorf("initialize: server negotiated protocol %q, want %q", r.ProtocolVersion, legacyVersion)
	}
	return nil
}

// notifyInitialized sends notifications/initialized, which gets 202 and no body.
func (s *session) notifyInitialized(ctx context.Context) error {
	body := []byte(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	resp, err := s.post(ctx, body, "notifications/initialized")
	if err != nil {
		return fmt.Errorf("post notifications/initialized: %w", err)
	}
	defer drainClose(resp.Body)
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("notifications/initialized: %w", statusError(resp))
	}
	return nil
}

// callTool performs one tools/call and checks that it succeeded.
func (s *session) callTool(ctx context.Context) error {
	id := s.id()
	resp, err := s.post(ctx, rpcRequest(id, "tools/call", s.params), "tools/call")
	if err != nil {
		return fmt.Errorf("post tools/call: %w", err)
	}
	result, err := readResult(resp, id)
	if err != nil {
		return fmt.Errorf("tools/call: %w", err)
	}
	return checkToolResult(result)
}

// close ends a legacy session with DELETE. The spec lets a server answer 405
// (it does not support client-initiated termination); that is not an error.
func (s *session) close(ctx context.Context) error {
	if s.era != eraLegacy || s.sessionID == "" {
		return nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, s.url, nil)
	if err != nil {
		return fmt.Errorf("build DELETE request: %w", err)
	}
	s.setCommonHeaders(req.Header)
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	defer drainClose(resp.Body)
	if resp.StatusCode/100 != 2 && resp.StatusCode != http.StatusMethodNotAllowed {
		return fmt.Errorf("delete session: %w", statusError(resp))
	}
	s.sessionID = ""
	return nil
}

func (s *session) id() int64 {
	s.nextID++
	return s.nextID
}

// post sends one JSON-RPC message with the headers its era requires.
func (s *session) post(ctx context.Context, body []byte, method string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	h := req.Header
	h.Set("Content-Type", "application/json")
	h.Set("Accept", "application/json, text/event-stream")
	s.setCommonHeaders(h)
	if s.era == eraModern {
		h.Set("Mcp-Method", method)
		if method == "tools/call" {
			h.Set("Mcp-Name", headerValue(s.tool))
		}
	}
	return s.client.Do(req)
}

// setCommonHeaders sets auth, protocol version and (legacy, once known) the session id.
func (s *session) setCommonHeaders(h http.Header) {
	if s.key != "" {
		h.Set("Authorization", "Bearer "+s.key)
	}
	switch s.era {
	case eraLegacy:
		// Before initialize completes there is no negotiated version or
		// session, so both headers are omitted, as the spec requires.
		if s.sessionID != "" {
			h.Set("MCP-Protocol-Version", legacyVersion)
			h.Set("Mcp-Session-Id", s.sessionID)
		}
	case eraModern:
		h.Set("MCP-Protocol-Version", modernVersion)
	}
}

// rpcRequest splices id, method and pre-encoded params into a JSON-RPC request.
func rpcRequest(id int64, method string, params []byte) []byte {
	b := make([]byte, 0, len(params)+64)
	b = append(b, `{"jsonrpc":"2.0","id":`...)
	b = strconv.AppendInt(b, id, 10)
	b = append(b, `,"method":`...)
	b = strconv.AppendQuote(b, method)
	b = append(b, `,"params":`...)
	b = append(b, params...)
	return append(b, '}')
}

// headerValue applies the SEP-2243 rule for Mcp-Name: values that are not
// plain visible ASCII (or that look already encoded) travel as =?base64?…?=.
func headerValue(s string) string {
	const prefix, suffix = "=?base64?", "?="
	needs := strings.HasPrefix(s, " ") || strings.HasPrefix(s, "\t") ||
		strings.HasSuffix(s, " ") || strings.HasSuffix(s, "\t") ||
		(strings.HasPrefix(s, prefix) && strings.HasSuffix(s, suffix))
	for i := 0; i < len(s) && !needs; i++ {
		needs = s[i] < 0x20 || s[i] > 0x7e
	}
	if !needs {
		return s
	}
	return prefix + base64.StdEncoding.EncodeToString([]byte(s)) + suffix
}

// httpStatusError is an unexpected HTTP status, with the start of the body
// because that is where servers put the JSON-RPC error explaining it. Its
// code lets a caller tell a session the server no longer knows (404) from
// other failures.
type httpStatusError struct {
	code    int
	snippet []byte
}

func (e *httpStatusError) Error() string {
	return fmt.Sprintf("unexpected HTTP status %d: %s", e.code, e.snippet)
}

func statusError(resp *http.Response) error {
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	return &httpStatusError{code: resp.StatusCode, snippet: bytes.TrimSpace(snippet)}
}

// isStatus reports whether err carries the HTTP status code.
func isStatus(err error, code int) bool {
	var e *httpStatusError
	return errors.As(err, &e) && e.code == code
}

// drainClose reads what is left of a body before closing it, because the
// transport only returns a connection to the keep-alive pool after EOF.
func drainClose(body io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(body, 1<<20))
	_ = body.Close()
}
