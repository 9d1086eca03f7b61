// Package audit is mcpgate's tamper-evident audit log.
//
// Every audited call is one Event, written as one JSON line. The lines are
// chained (each record names the hash of the one before) and are the leaves
// of an append-only Merkle tree with RFC 6962 hashing
// (golang.org/x/mod/sumdb/tlog). At intervals and at Close the Log writes a
// checkpoint: the tree size and root, signed with an Ed25519 key in the
// signed-note format (golang.org/x/mod/sumdb/note). Verify recomputes chain
// and tree and names the first line where the file stops holding.
//
// Appends are group-committed: one writer goroutine writes every pending
// record, fsyncs once, and only then acknowledges them. A Log that fails to
// write or sync stays failed (ErrUnavailable) so that the caller refuses the
// call instead of serving it unaudited.
//
// See docs/audit.md for the event schema and the file format.
package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"
)

// Decision is the gateway's verdict on a call.
type Decision string

// The decisions.
const (
	Allow Decision = "allow"
	Deny  Decision = "deny"
)

// Event is the one audit event schema: one event per call mcpgate decided on.
type Event struct {
	Time       time.Time `json:"time"`                  // when the call arrived (UTC)
	Principal  string    `json:"principal"`             // authenticated principal id ("" if none)
	AuthMethod string    `json:"auth_method,omitempty"` // api_key, oauth, mtls, none
	Session    string    `json:"session,omitempty"`     // Mcp-Session-Id (legacy era)
	Era        string    `json:"era,omitempty"`         // protocol revision, e.g. 2025-11-25 or 2026-07-28
	Method     string    `json:"method"`                // JSON-RPC method, e.g. tools/call
	Upstream   string    `json:"upstream,omitempty"`    // upstream server name
	Name       string    `json:"name,omitempty"`        // tool, resource or prompt name
	Decision   Decision  `json:"decision"`              // allow or deny
	Rule       string    `json:"rule,omitempty"`        // the policy rule that decided
	Reason     string    `json:"reason,omitempty"`      // why (for a deny)
	ArgsSHA256 string    `json:"args_sha256,omitempty"` // ArgsDigest of the raw arguments
	Outcome    string    `json:"outcome,omitempty"`     // ok, error, denied, canceled, ...
	LatencyMS  int64     `json:"latency_ms"`            // time to the response, in milliseconds
	BytesIn    int64     `json:"bytes_in"`              // request body bytes
	BytesOut   int64     `json:"bytes_out"`             // response body bytes
	HTTPStatus int       `json:"http_status,omitempty"` // HTTP status returned to the client
	ErrorCode  int       `json:"error_code,omitempty"`  // JSON-RPC error code, if any
}

// ArgsDigest is the lowercase hex SHA-256 of a call's raw arguments, as
// Event.ArgsSHA256 records it: the arguments themselves are never logged.
func ArgsDigest(raw []byte) string {
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:])
}

func (e *Event) validate() error {
	if e.Decision != Allow && e.Decision != Deny {
		return fmt.Errorf("audit: event decision %q: want %q or %q", e.Decision, Allow, Deny)
	}
	if e.Method == "" {
		return fmt.Errorf("audit: event has no method")
	}
	return nil
}
