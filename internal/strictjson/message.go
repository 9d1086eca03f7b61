package strictjson

import (
	"bytes"
	"encoding/json"
	"strconv"
)

// Kind classifies a JSON-RPC 2.0 message.
type Kind int

const (
	Request      Kind = iota + 1 // method and id
	Notification                 // method, no id
	Response                     // id and exactly one of result/error
)

func (k Kind) String() string {
	switch k {
	case Request:
		return "request"
	case Notification:
		return "notification"
	case Response:
		return "response"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Message is the routing view of one JSON-RPC 2.0 message. Only Arguments
// aliases the input.
type Message struct {
	Kind            Kind
	Method          string
	ID              json.RawMessage // raw id bytes; nil if absent
	Name            string          // params.name, if a string
	URI             string          // params.uri, if a string
	ProtocolVersion string          // params._meta["io.modelcontextprotocol/protocolVersion"], if a string
	// WantsNotifications: params._meta has "progressToken" or
	// "io.modelcontextprotocol/logLevel" (any value), so the sender may be
	// sent progress or log notifications while its request is served.
	WantsNotifications bool
	// Arguments is the raw value of params.arguments (a tools/call's or a
	// prompts/get's), as it appears in the input (no copy); nil if absent.
	// It is there for the audit record, which digests exactly these bytes:
	// what the upstream is handed, since the gate refuses the key variants
	// ("Arguments") a decoder could read in their place.
	Arguments json.RawMessage
}

// ParseMessage runs Check, then checks JSON-RPC 2.0 shape as MCP uses it, and
// returns the routing view; both happen in the same pass over data.
//
// Beyond the JSON-RPC rules (no batches; "jsonrpc" exactly "2.0"; "method" a
// non-empty string; "id" a string or an integer; "params" and "error"
// objects; request, notification or response), it rejects two things an SDK
// decoder would silently reinterpret:
//   - a key that case-folds to a routed key without being it ("Method",
//     "paramſ", "NAME" in params), even when the real key is absent;
//   - integer ids outside ±(2^53-1), which SDKs that decode ids through
//     float64 would change.
//
// Unknown members are left alone: they do not affect routing.
func ParseMessage(data []byte, lim Limits) (*Message, error) {
	var s scanner
	s.init(data, lim)
	defer s.release()
	s.route = true
	if err := s.run(); err != nil {
		return nil, err
	}
	m, err := s.msg.message(&s)
	if err != nil {
		return nil, err
	}
	return m, nil
}

// keyID names the keys ParseMessage captures. Which one a key is depends on
// its path, see scanner.classify.
type keyID uint8

const (
	kNone keyID = iota
	// top level
	kJSONRPC
	kMethod
	kID
	kParams
	kResult
	kError
	// in params
	kName
	kURI
	kArguments
	kMeta
	// in params._meta
	kProtocolVersion
	kProgressToken
	kLogLevel
	numKeyIDs
)

const (
	protocolVersionKey = "io.modelcontextprotocol/protocolVersion"
	progressTokenKey   = "progressToken"
	logLevelKey        = "io.modelcontextprotocol/logLevel"
)

// keyName is the exact spelling of a routed key.
func keyName(id keyID) string {
	switch id {
	case kJSONRPC:
		return "jsonrpc"
	case kMethod:
		return "method"
	case kID:
		return "id"
	case kParams:
		return "params"
	case kResult:
		return "result"
	case kError:
		return "error"
	case kName:
		return "name"
	case kURI:
		return "uri"
	case kArguments:
		return "arguments"
	case kMeta:
		return "_meta"
	case kProtocolVersion:
		return protocolVersionKey
	case kProgressToken:
		return progressTokenKey
	case kLogLevel:
		return logLevelKey
	}
	return ""
}

// value records one captured member.
type value struct {
	present bool
	first   byte // first byte of the value: its JSON type
	isInt   bool
	start   int
	end     int
	// Decoded string values that Message exposes, as capture.strs[strStart:strEnd].
	strStart, strEnd int
}

type capture struct {
	vals [numKeyIDs]value
	// First key that folds to a routed key without being it ("Method",
	// "paramſ", "NAME"). encoding/json would route it like the real key,
	// so such a message is ambiguous to everyone downstream.
	variantOff int
	variant    string
	want       string
	variantAt  string

	// Decoded routed strings, so Message needs one string allocation, not one per field.
	strs      []byte
	jsonrpc20 bool
}

// classify says what the key just read into the innermost object means for
// routing. Only paths ParseMessage exposes are considered.
func (s *scanner) classify(key []byte, off int) keyID {
	f := s.frames
	var lo, hi keyID // candidate ids lo..hi
	switch {
	case len(f) == 1:
		lo, hi = kJSONRPC, kError
	case len(f) == 2 && !f[0].array && f[0].key == kParams:
		lo, hi = kName, kMeta
	case len(f) == 3 && f[0].key == kParams && !f[1].array && f[1].key == kMeta:
		// _meta decodes into a map, which matches keys exactly.
		for id := kProtocolVersion; id <= kLogLevel; id++ {
			if string(key) == keyName(id) {
				return id
			}
		}
		return kNone
	default:
		return kNone
	}
	for id := lo; id <= hi; id++ {
		if string(key) == keyName(id) {
			return id
		}
	}
	// encoding/json matches struct fields with bytes.EqualFold semantics.
	for id := lo; id <= hi; id++ {
		if n := keyName(id); s.msg.variant == "" && bytes.EqualFold(key, []byte(n)) {
			s.msg.variantOff = off
			s.msg.variant = string(key)
			s.msg.want = n
			s.msg.variantAt = s.path(len(f) - 1)
		}
	}
	return kNone
}

// captureValue scans the value of a routed member and records it.
func (s *scanner) captureValue(id keyID) *Error {
	s.skipWS()
	if s.pos >= len(s.data) {
		return s.unexpected("looking for value")
	}
	v := &s.msg.vals[id]
	*v = value{present: true, first: s.data[s.pos], start: s.pos}
	var err *Error
	switch c := v.first; {
	case c == '"':
		var b []byte
		b, err = s.str(true)
		switch id {
		case kJSONRPC:
			s.msg.jsonrpc20 = string(b) == "2.0"
		case kMethod, kName, kURI, kProtocolVersion:
			v.strStart = len(s.msg.strs)
			s.msg.strs = append(s.msg.strs, b...)
			v.strEnd = len(s.msg.strs)
		}
	case c == '-' || '0' <= c && c <= '9':
		v.isInt, err = s.number()
	default:
		err = s.value()
	}
	v.end = s.pos
	return err
}

// maxSafeID is the largest integer id every JSON-RPC peer can represent
// exactly: SDKs that decode ids through float64 would otherwise silently
// change it, breaking request/response correlation.
const maxSafeID = 1<<53 - 1

func (c *capture) message(s *scanner) (*Message, *Error) {
	invalid := func(off int, reason string) (*Message, *Error) {
		return nil, &Error{Code: CodeInvalidRequest, Offset: off, Reason: reason}
	}
	s.pos = 0
	s.skipWS()
	switch s.data[s.pos] {
	case '{':
	case '[':
		return invalid(s.pos, "batch requests are not supported")
	default:
		return invalid(s.pos, "message must be a JSON object")
	}
	if c.variant != "" {
		return invalid(c.variantOff, "non-canonical key "+quoteKey(c.variant)+" at "+c.variantAt+", expected "+strconv.Quote(c.want))
	}

	v := &c.vals
	switch {
	case !v[kJSONRPC].present:
		return invalid(-1, `missing "jsonrpc"`)
	case !c.jsonrpc20:
		return invalid(v[kJSONRPC].start, `"jsonrpc" must be "2.0"`)
	}
	m := &Message{}
	if mv := v[kMethod]; mv.present && (mv.first != '"' || mv.strStart == mv.strEnd) {
		return invalid(mv.start, `"method" must be a non-empty string`)
	}
	if iv := v[kID]; iv.present {
		raw := s.data[iv.start:iv.end]
		switch {
		case iv.first == '"':
		case iv.isInt:
			n, err := strconv.ParseInt(string(raw), 10, 64)
			if err != nil || n > maxSafeID || n < -maxSafeID {
				return invalid(iv.start, `"id" integer out of range`)
			}
		default:
			return invalid(iv.start, `"id" must be a string or an integer`)
		}
		m.ID = append(json.RawMessage(nil), raw...)
	}
	if pv := v[kParams]; pv.present && pv.first != '{' {
		return invalid(pv.start, `"params" must be an object`)
	}
	if ev := v[kError]; ev.present && ev.first != '{' {
		return invalid(ev.start, `"error" must be an object`)
	}

	hasResult, hasError := v[kResult].present, v[kError].present
	switch {
	case v[kMethod].present:
		if hasResult || hasError {
			return invalid(-1, `request must not have "result" or "error"`)
		}
		m.Kind = Notification
		if v[kID].present {
			m.Kind = Request
		}
	case !v[kID].present:
		return invalid(-1, `message has neither "method" nor "id"`)
	case v[kParams].present:
		return invalid(v[kParams].start, `response must not have "params"`)
	case hasResult && hasError:
		return invalid(-1, `response must not have both "result" and "error"`)
	case !hasResult && !hasError:
		return invalid(-1, `response must have "result" or "error"`)
	default:
		m.Kind = Response
	}

	// Only string values were copied to strs: a non-string name or uri is
	// left empty here, for the SDK to refuse.
	strs := string(c.strs)
	m.Method = strs[v[kMethod].strStart:v[kMethod].strEnd]
	m.Name = strs[v[kName].strStart:v[kName].strEnd]
	m.URI = strs[v[kURI].strStart:v[kURI].strEnd]
	m.ProtocolVersion = strs[v[kProtocolVersion].strStart:v[kProtocolVersion].strEnd]
	m.WantsNotifications = v[kProgressToken].present || v[kLogLevel].present
	if av := v[kArguments]; av.present {
		m.Arguments = json.RawMessage(s.data[av.start:av.end:av.end])
	}
	return m, nil
}
