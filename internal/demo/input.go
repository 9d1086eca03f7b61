package demo

import (
	"encoding/json"
	"fmt"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// This file holds the helpers for asking the client for input: which kinds of
// input a request's declared capabilities allow, building the input requests,
// and reading the client's answers. Sampling and roots are deprecated in
// 2026-07-28 (SEP-2577) but remain functional and are still exercised by the
// conformance suite, so every use of their SDK types is confined here.

// inputKind is a kind of input a server may request from a client.
type inputKind int

const (
	inputElicitation inputKind = iota
	inputSampling
	inputRoots
)

// inputSupport records which input kinds a client declared.
type inputSupport struct {
	elicitation bool
	sampling    bool
	roots       bool
}

// declaredInputs reads the client capabilities in effect for a request (its
// ClientCapabilities method): the per-request _meta of a 2026-07-28 request,
// or the initialize handshake of a legacy session. A server MUST NOT ask for
// input the client did not declare.
func declaredInputs(caps *mcp.ClientCapabilities) inputSupport {
	if caps == nil {
		return inputSupport{}
	}
	return inputSupport{
		elicitation: caps.Elicitation != nil,
		//lint:ignore SA1019 sampling is deprecated in 2026-07-28 but still negotiated.
		sampling: caps.Sampling != nil,
		//lint:ignore SA1019 roots are deprecated in 2026-07-28 but still negotiated.
		roots: caps.RootsV2 != nil || caps.Roots.ListChanged,
	}
}

func (s inputSupport) has(kind inputKind) bool {
	switch kind {
	case inputElicitation:
		return s.elicitation
	case inputSampling:
		return s.sampling
	case inputRoots:
		return s.roots
	}
	return false
}

// requireInput returns the MissingRequiredClientCapability error (-32021)
// when the client did not declare the capability for kind, and nil otherwise.
func requireInput(support inputSupport, kind inputKind) error {
	if support.has(kind) {
		return nil
	}
	return missingCapabilityError(kind)
}

// missingCapabilityError builds the -32021 error whose data names the missing
// capability as a ClientCapabilities object ({"sampling": {}}), as SEP-2575
// specifies. The data is built by hand because mcp.ClientCapabilities always
// marshals a "roots" member, which would name a capability we do not need.
func missingCapabilityError(kind inputKind) error {
	name := kind.capabilityName()
	data, err := json.Marshal(map[string]any{
		"requiredCapabilities": map[string]any{name: map[string]any{}},
	})
	if err != nil {
		return fmt.Errorf("encode missing capability: %w", err)
	}
	return &jsonrpc.Error{
		Code:    mcp.CodeMissingRequiredClientCapabilities,
		Message: fmt.Sprintf("this request needs the client %s capability, which it did not declare", name),
		Data:    data,
	}
}

// capabilityName is the ClientCapabilities member that declares kind.
func (k inputKind) capabilityName() string {
	switch k {
	case inputElicitation:
		return "elicitation"
	case inputSampling:
		return "sampling"
	case inputRoots:
		return "roots"
	}
	return "unknown"
}

// elicitForm asks the user to fill in a form described by schema.
func elicitForm(message string, schema any) mcp.InputRequest {
	return &mcp.ElicitParams{Mode: "form", Message: message, RequestedSchema: schema}
}

// samplingRequest asks the client's LLM to answer a single user prompt.
func samplingRequest(prompt string, maxTokens int64) mcp.InputRequest {
	//lint:ignore SA1019 sampling is deprecated in 2026-07-28 but still supported via MRTR.
	return &mcp.CreateMessageParams{
		MaxTokens: maxTokens,
		//lint:ignore SA1019 sampling is deprecated in 2026-07-28 but still supported via MRTR.
		Messages: []*mcp.SamplingMessage{{Role: "user", Content: &mcp.TextContent{Text: prompt}}},
	}
}

// rootsRequest asks the client for its roots.
func rootsRequest() mcp.InputRequest {
	//lint:ignore SA1019 roots are deprecated in 2026-07-28 but still supported via MRTR.
	return &mcp.ListRootsParams{}
}

// acceptedForm returns the form content of the elicitation answer under key
// when the user accepted it, and nil otherwise (missing, declined, cancelled
// or not an elicitation answer at all).
func acceptedForm(responses mcp.InputResponseMap, key string) map[string]any {
	answer, ok := responses[key].(*mcp.ElicitResult)
	if !ok || answer == nil || answer.Action != "accept" {
		return nil
	}
	return answer.Content
}

// acceptedString returns the string field of an accepted elicitation answer,
// or "" when there is none.
func acceptedString(responses mcp.InputResponseMap, key, field string) string {
	s, _ := acceptedForm(responses, key)[field].(string)
	return s
}

// samplingText returns the first text block of the sampling answer under key.
// Both eras decode sampling answers into the "with tools" result type.
func samplingText(responses mcp.InputResponseMap, key string) (string, bool) {
	//lint:ignore SA1019 sampling is deprecated in 2026-07-28 but still supported via MRTR.
	answer, ok := responses[key].(*mcp.CreateMessageWithToolsResult)
	if !ok || answer == nil {
		return "", false
	}
	for _, c := range answer.Content {
		if text, ok := c.(*mcp.TextContent); ok {
			return text.Text, true
		}
	}
	return "(non-text response)", true
}

// rootURIs returns the URIs of the roots answer under key.
func rootURIs(responses mcp.InputResponseMap, key string) ([]string, bool) {
	//lint:ignore SA1019 roots are deprecated in 2026-07-28 but still supported via MRTR.
	answer, ok := responses[key].(*mcp.ListRootsResult)
	if !ok || answer == nil {
		return nil, false
	}
	uris := make([]string, 0, len(answer.Roots))
	for _, r := range answer.Roots {
		if r != nil {
			uris = append(uris, r.URI)
		}
	}
	return uris, true
}
