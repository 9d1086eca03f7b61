package transport

import (
	"bytes"
	"io"
	"net/http"

	"github.com/mcpgate/mcpgate/internal/strictjson"
)

// Era is an MCP protocol era; one endpoint serves both.
type Era int

const (
	// Legacy is 2025-11-25 and earlier: initialize, Mcp-Session-Id, GET streams.
	Legacy Era = iota
	// Modern is 2026-07-28: stateless, per-request _meta.
	Modern
)

func (e Era) String() string {
	if e == Modern {
		return "modern"
	}
	return "legacy"
}

// firstModernVersion is the first protocol revision of the modern era.
// Revisions are dates, so string order is time order.
const firstModernVersion = "2026-07-28"

// ChooseEra decides which era serves a request. A request is modern when its
// MCP-Protocol-Version header or its body's _meta names a modern revision, or
// when it is server/discover (the modern era probe); everything else
// (initialize, session traffic, GET and DELETE) is legacy. msg is nil for
// requests without a body.
func ChooseEra(header http.Header, msg *strictjson.Message) Era {
	if v := header.Get("MCP-Protocol-Version"); v >= firstModernVersion {
		return Modern
	}
	if msg != nil && (msg.ProtocolVersion != "" || msg.Method == "server/discover") {
		return Modern
	}
	return Legacy
}

// EraMux serves one MCP endpoint for both eras from two SDK handlers, the
// way the gateway's own front does, for servers without the gateway's
// checks (the demo server run over HTTP). The body is read under limits and
// handed on unchanged.
func EraMux(legacy, modern http.Handler, limits strictjson.Limits) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var msg *strictjson.Message
		if r.Method == http.MethodPost {
			body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(limits.MaxBytes)))
			if err != nil {
				Reject(w, http.StatusRequestEntityTooLarge, CodeInvalidRequest, "request body too large or unreadable")
				return
			}
			if msg, err = strictjson.ParseMessage(body, limits); err != nil {
				Reject(w, http.StatusBadRequest, CodeParseError, "invalid JSON-RPC message")
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		if ChooseEra(r.Header, msg) == Modern {
			modern.ServeHTTP(w, r)
			return
		}
		legacy.ServeHTTP(w, r)
	})
}
