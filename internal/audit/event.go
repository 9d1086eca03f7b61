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
	"encoding/json"
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

// Stage says which of a call's records an event is. A call the gateway
// forwards gets two records sharing one Call id: the write-ahead "request"
// record, durable before anything acts on the call, and the "result" record
// once the response has been sent. A call refused at the front gets only its
// "request" record (decision deny); one refused by the policy or an argument
// schema gets a "policy" record between the two.
type Stage string

// The stages.
const (
	StageRequest Stage = "request"
	StagePolicy  Stage = "policy"
	StageResult  Stage = "result"
)

// The outcomes a record can carry. A request record of an allowed call has
// none (the call has not run); every other record has one.
const (
	OutcomeOK                  = "ok"                   // answered with a result
	OutcomeError               = "error"                // answered with a JSON-RPC error (see error_code)
	OutcomeToolError           = "tool_error"           // a tools/call result with isError: the tool ran and failed
	OutcomeTimeout             = "timeout"              // the upstream did not answer within call_timeout
	OutcomeCanceled            = "canceled"             // the client went away or cancelled the call
	OutcomeUpstreamUnavailable = "upstream_unavailable" // the upstream was down, restarting or at capacity
	OutcomeBadResult           = "bad_result"           // the upstream's result broke the gateway's rules
	OutcomeDenied              = "denied"               // refused by the policy or an argument schema
	OutcomeRefused             = "refused"              // refused by the front (auth, limits, JSON, audit)
)

// Event is the one audit event schema: every record of every call mcpgate
// decided on. See docs/audit.md.
type Event struct {
	Time       time.Time `json:"time"`                  // when the call arrived (UTC); the same on all its records
	Call       string    `json:"call,omitempty"`        // 128-bit random hex id shared by a call's records
	Stage      Stage     `json:"stage,omitempty"`       // request, policy or result
	Principal  string    `json:"principal"`             // authenticated principal id ("" if none)
	Roles      []string  `json:"roles,omitempty"`       // the principal's roles
	Scopes     []string  `json:"scopes,omitempty"`      // the principal's OAuth scopes
	AuthMethod string    `json:"auth_method,omitempty"` // api_key, oauth, mtls, local, none
	Session    string    `json:"session,omitempty"`     // Mcp-Session-Id (legacy era)
	Era        string    `json:"era,omitempty"`         // protocol revision, e.g. 2025-11-25 or 2026-07-28
	Method     string    `json:"method"`                // JSON-RPC method, e.g. tools/call
	Upstream   string    `json:"upstream,omitempty"`    // upstream server name
	Name       string    `json:"name,omitempty"`        // tool, resource or prompt name
	Decision   Decision  `json:"decision"`              // allow or deny
	Rule       string    `json:"rule,omitempty"`        // the policy rule that decided
	Reason     string    `json:"reason,omitempty"`      // why (for a deny)
	ArgsSHA256 string    `json:"args_sha256,omitempty"` // ArgsDigest of the raw arguments
	// Arguments are the call's arguments, redacted (Redactor), only where
	// audit.arguments.record allows; ArgumentsOmitted says why they are
	// missing when it does.
	Arguments        json.RawMessage `json:"arguments,omitempty"`
	ArgumentsOmitted string          `json:"arguments_omitted,omitempty"`
	Outcome          string          `json:"outcome,omitempty"`     // one of the Outcome constants
	LatencyMS        int64           `json:"latency_ms"`            // request arrival to response end, in milliseconds (result)
	BytesIn          int64           `json:"bytes_in"`              // request body bytes
	BytesOut         int64           `json:"bytes_out"`             // response body bytes written to the client (result)
	HTTPStatus       int             `json:"http_status,omitempty"` // HTTP status returned to the client
	ErrorCode        int             `json:"error_code,omitempty"`  // JSON-RPC error code, if any
	// Remote is the client's address, on records of requests refused
	// before a principal was known; on a summary of such refusals, the
	// address (an IPv6 /64) they came from.
	Remote string `json:"remote,omitempty"`
	// Count is, on a summary record (method "http:refusals"), how many
	// refusals it stands for.
	Count int `json:"count,omitempty"`
}

// ArgsDigest is the lowercase hex SHA-256 of a call's raw arguments, as
// Event.ArgsSHA256 records it: the arguments themselves are logged only
// where the operator asks (audit.arguments), and then redacted.
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
	switch e.Stage {
	case "", StageRequest, StagePolicy, StageResult:
	default:
		return fmt.Errorf("audit: event stage %q: want %q, %q or %q", e.Stage, StageRequest, StagePolicy, StageResult)
	}
	return nil
}
