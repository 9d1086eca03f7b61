// Package transport is mcpgate's hardened HTTP front: the http.Server with its
// timeouts and limits, the Host and Origin allowlists that stop DNS rebinding
// and cross-site requests, the one function that tells a client why a
// request was refused, and the dialer of the clients mcpgate pushes alerts
// and traces with.
package transport

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"

	"github.com/mcpgate/mcpgate/internal/config"
)

// NewServer returns an http.Server with every timeout and size limit set.
// WriteTimeout is left zero on purpose: a legacy event stream legitimately
// outlives any single write bound, so the MCP front sets a per-request write
// deadline instead (write_timeout for POST, stream_timeout for GET).
func NewServer(l config.Listen, h http.Handler, logger *slog.Logger) *http.Server {
	return &http.Server{
		Addr:              l.Address,
		Handler:           h,
		ReadHeaderTimeout: l.ReadHeaderTimeout,
		IdleTimeout:       l.IdleTimeout,
		MaxHeaderBytes:    l.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
}

// JSON-RPC error codes mcpgate answers with at the HTTP layer.
const (
	CodeParseError     = -32700
	CodeInvalidRequest = -32600
	CodeInternalError  = -32603
)

// rejection is the body of every refusal: a JSON-RPC error with a null id,
// as the spec allows when the request could not be (or was not) read.
type rejection struct {
	JSONRPC string         `json:"jsonrpc"`
	ID      any            `json:"id"`
	Error   rejectionError `json:"error"`
}

type rejectionError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// Reject tells the client that its request was refused. It is the one place
// that decides what a client sees: message must be client-safe (say what was
// wrong with the request, never what went wrong inside mcpgate).
func Reject(w http.ResponseWriter, status, code int, message string) {
	var body bytes.Buffer
	enc := json.NewEncoder(&body)
	enc.SetEscapeHTML(false) // the body is JSON, never HTML; keep messages readable
	enc.Encode(rejection{JSONRPC: "2.0", Error: rejectionError{Code: code, Message: message}})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(body.Bytes())
}
