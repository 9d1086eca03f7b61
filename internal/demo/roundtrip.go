package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpgate/mcpgate/internal/sealed"
)

// Every tool and prompt here needs input from the client. Each is written as
// a multi round-trip (SEP-2322) handler: without the answers it returns
// InputRequests (plus a sealed requestState where the answers must be tied
// to the request that asked for them, or later rounds depend on earlier
// ones); called again with InputResponses it finishes. A 2026-07-28
// client performs the retry itself; for a 2025-11-25 session the SDK sends
// the requests to the client over the session and re-invokes the handler once
// with the answers.

const (
	// Input request keys; the conformance suite looks some of them up by name.
	keyUserName    = "user_name"
	keyLLMAnswer   = "capital_question"
	keyClientRoots = "client_roots"
	keyConfirm     = "confirm"
	keyGreeting    = "greeting"
	keyStep1       = "step1"
	keyStep2       = "step2"
	keyUserContext = "user_context"
	keyForm        = "form"
	keyPrompt      = "llm_prompt"

	// Tools whose name is also part of their requestState binding.
	toolMultipleInputs = "test_input_required_result_multiple_inputs"
	toolMultiRound     = "test_input_required_result_multi_round"

	// samplingMaxTokens bounds the completions the tools ask for.
	samplingMaxTokens      = 100
	shortSamplingMaxTokens = 50

	// singleStep is the step sealed by tools that ask only once.
	singleStep = 1
	// Steps of test_input_required_result_multi_round, kept in its state.
	stepAskName  = 1
	stepAskColor = 2
	stateKeyName = "name"
)

// registerInputTools adds the tools that ask for one input and report the
// answer: the fixtures of the 2025-11-25 sampling and elicitation scenarios.
func (d *Demo) registerInputTools() {
	mcp.AddTool(d.server, &mcp.Tool{
		Name:        "test_sampling",
		Description: "Asks the client's LLM to complete the given prompt and returns its answer.",
	}, askLLM)
	mcp.AddTool(d.server, &mcp.Tool{
		Name:        "test_elicitation",
		Description: "Asks the user for a username and email with the given message and reports the answer.",
	}, func(_ context.Context, req *mcp.CallToolRequest, in elicitationInput) (*mcp.CallToolResult, any, error) {
		return elicitOnce(req, in.Message, contactSchema(), "User response")
	})
	mcp.AddTool(d.server, &mcp.Tool{
		Name:        "test_elicitation_sep1034_defaults",
		Description: "Asks the user for a form whose primitive fields all carry default values (SEP-1034).",
	}, func(_ context.Context, req *mcp.CallToolRequest, _ any) (*mcp.CallToolResult, any, error) {
		return elicitOnce(req, "Test defaults for primitives", defaultsSchema(), "Elicitation completed")
	})
	mcp.AddTool(d.server, &mcp.Tool{
		Name:        "test_elicitation_sep1330_enums",
		Description: "Asks the user for a form using every enum style of SEP-1330.",
	}, func(_ context.Context, req *mcp.CallToolRequest, _ any) (*mcp.CallToolResult, any, error) {
		return elicitOnce(req, "Test enum schemas", enumsSchema(), "Elicitation completed")
	})
}

type samplingInput struct {
	Prompt string `json:"prompt" jsonschema:"the prompt to send to the client's LLM"`
}

type elicitationInput struct {
	Message string `json:"message" jsonschema:"the message to show the user"`
}

func askLLM(_ context.Context, req *mcp.CallToolRequest, in samplingInput) (*mcp.CallToolResult, any, error) {
	if text, ok := samplingText(req.Params.InputResponses, keyPrompt); ok {
		return textResult("LLM response: " + text), nil, nil
	}
	if err := requireInput(declaredInputs(req.ClientCapabilities()), inputSampling); err != nil {
		return nil, nil, err
	}
	return needInput(mcp.InputRequestMap{keyPrompt: samplingRequest(in.Prompt, samplingMaxTokens)}, ""), nil, nil
}

// elicitOnce asks for one form and, once answered, reports the user's action
// and content after prefix. Declined and cancelled answers are reported too:
// they are answers, not missing input.
func elicitOnce(req *mcp.CallToolRequest, message string, schema any, prefix string) (*mcp.CallToolResult, any, error) {
	if answer, ok := req.Params.InputResponses[keyForm].(*mcp.ElicitResult); ok && answer != nil {
		return textResult(prefix + ": " + describeAnswer(answer)), nil, nil
	}
	if err := requireInput(declaredInputs(req.ClientCapabilities()), inputElicitation); err != nil {
		return nil, nil, err
	}
	return needInput(mcp.InputRequestMap{keyForm: elicitForm(message, schema)}, ""), nil, nil
}

// registerRoundTripTools adds the 2026-07-28 multi round-trip fixtures.
func (d *Demo) registerRoundTripTools() {
	mcp.AddTool(d.server, &mcp.Tool{
		Name:        "test_input_required_result_elicitation",
		Description: "Asks for the caller's name by elicitation and greets them.",
	}, greetByName)
	mcp.AddTool(d.server, &mcp.Tool{
		Name:        "test_input_required_result_sampling",
		Description: "Asks the client's LLM for the capital of France and reports the answer.",
	}, askCapital)
	mcp.AddTool(d.server, &mcp.Tool{
		Name:        "test_input_required_result_list_roots",
		Description: "Asks the client for its roots and lists them.",
	}, listClientRoots)
	d.addConfirmTool("test_input_required_result_request_state",
		"Asks for a confirmation with a sealed requestState and reports state-ok once both come back.")
	d.addConfirmTool("test_input_required_result_tampered_state",
		"Asks for a confirmation with a sealed requestState; a requestState that fails its HMAC check is rejected.")
	mcp.AddTool(d.server, &mcp.Tool{
		Name:        toolMultipleInputs,
		Description: "Asks for a name (elicitation), a greeting (sampling) and the client roots in one round.",
	}, d.greetWithEverything)
	mcp.AddTool(d.server, &mcp.Tool{
		Name:        toolMultiRound,
		Description: "Asks for a name, then a favourite colour, carrying the name between rounds in the sealed requestState.",
	}, d.multiRound)
	mcp.AddTool(d.server, &mcp.Tool{
		Name:        "test_input_required_result_capabilities",
		Description: "Asks only for the kinds of input the request's client capabilities declare.",
	}, askWhatIsDeclared)
}

func greetByName(_ context.Context, req *mcp.CallToolRequest, _ any) (*mcp.CallToolResult, any, error) {
	// Anything short of an accepted answer with a name (nothing, the wrong
	// keys, null) is answered by asking again rather than with an error.
	if name := acceptedString(req.Params.InputResponses, keyUserName, "name"); name != "" {
		return textResult(fmt.Sprintf("Hello, %s!", name)), nil, nil
	}
	if err := requireInput(declaredInputs(req.ClientCapabilities()), inputElicitation); err != nil {
		return nil, nil, err
	}
	return needInput(mcp.InputRequestMap{keyUserName: nameRequest("What is your name?")}, ""), nil, nil
}

func askCapital(_ context.Context, req *mcp.CallToolRequest, _ any) (*mcp.CallToolResult, any, error) {
	if text, ok := samplingText(req.Params.InputResponses, keyLLMAnswer); ok {
		return textResult("Sampling response: " + text), nil, nil
	}
	if err := requireInput(declaredInputs(req.ClientCapabilities()), inputSampling); err != nil {
		return nil, nil, err
	}
	return needInput(mcp.InputRequestMap{
		keyLLMAnswer: samplingRequest("What is the capital of France?", samplingMaxTokens),
	}, ""), nil, nil
}

func listClientRoots(_ context.Context, req *mcp.CallToolRequest, _ any) (*mcp.CallToolResult, any, error) {
	if uris, ok := rootURIs(req.Params.InputResponses, keyClientRoots); ok {
		return textResult(fmt.Sprintf("Client exposed %d root(s): %s", len(uris), strings.Join(uris, ", "))), nil, nil
	}
	if err := requireInput(declaredInputs(req.ClientCapabilities()), inputRoots); err != nil {
		return nil, nil, err
	}
	return needInput(mcp.InputRequestMap{keyClientRoots: rootsRequest()}, ""), nil, nil
}

// addConfirmTool registers a tool that completes only when a confirmation
// comes back together with the requestState it was asked with.
func (d *Demo) addConfirmTool(name, description string) {
	op := toolOperation(name)
	mcp.AddTool(d.server, &mcp.Tool{Name: name, Description: description},
		func(_ context.Context, req *mcp.CallToolRequest, _ any) (*mcp.CallToolResult, any, error) {
			if state := req.Params.RequestState; state != "" {
				if _, err := d.openState(op, state); err != nil {
					return nil, nil, err
				}
				if acceptedForm(req.Params.InputResponses, keyConfirm) != nil {
					return textResult("state-ok: requestState verified and confirmation accepted"), nil, nil
				}
			}
			if err := requireInput(declaredInputs(req.ClientCapabilities()), inputElicitation); err != nil {
				return nil, nil, err
			}
			state, err := d.states.Seal(op, singleStep, nil)
			if err != nil {
				return nil, nil, err
			}
			return needInput(mcp.InputRequestMap{keyConfirm: confirmRequest()}, state), nil, nil
		})
}

// greetWithEverything asks for all three input kinds at once.
func (d *Demo) greetWithEverything(_ context.Context, req *mcp.CallToolRequest, _ any) (*mcp.CallToolResult, any, error) {
	op := toolOperation(toolMultipleInputs)
	responses := req.Params.InputResponses
	// Answers count only when they come back with the state they were asked
	// with; answers without one are treated as unsolicited.
	verified := false
	if state := req.Params.RequestState; state != "" {
		if _, err := d.openState(op, state); err != nil {
			return nil, nil, err
		}
		verified = true
	}
	name := acceptedString(responses, keyUserName, "name")
	greeting, greeted := samplingText(responses, keyGreeting)
	roots, rooted := rootURIs(responses, keyClientRoots)
	if verified && name != "" && greeted && rooted {
		return textResult(fmt.Sprintf("%s %s (%d root(s) visible)", greeting, name, len(roots))), nil, nil
	}

	support := declaredInputs(req.ClientCapabilities())
	for _, kind := range []inputKind{inputElicitation, inputSampling, inputRoots} {
		if err := requireInput(support, kind); err != nil {
			return nil, nil, err
		}
	}
	state, err := d.states.Seal(op, singleStep, nil)
	if err != nil {
		return nil, nil, err
	}
	return needInput(mcp.InputRequestMap{
		keyUserName:    nameRequest("What is your name?"),
		keyGreeting:    samplingRequest("Generate a greeting", shortSamplingMaxTokens),
		keyClientRoots: rootsRequest(),
	}, state), nil, nil
}

// multiRound asks for a name, then a colour. The server keeps nothing between
// rounds: the step and the name travel in the sealed requestState.
func (d *Demo) multiRound(_ context.Context, req *mcp.CallToolRequest, _ any) (*mcp.CallToolResult, any, error) {
	op := toolOperation(toolMultiRound)
	if err := requireInput(declaredInputs(req.ClientCapabilities()), inputElicitation); err != nil {
		return nil, nil, err
	}
	if req.Params.RequestState == "" {
		return d.askStep(op, stepAskName, nil)
	}
	state, err := d.openState(op, req.Params.RequestState)
	if err != nil {
		return nil, nil, err
	}
	responses := req.Params.InputResponses
	switch state.Step {
	case stepAskName:
		name := acceptedString(responses, keyStep1, "name")
		if name == "" {
			return d.askStep(op, stepAskName, nil)
		}
		return d.askStep(op, stepAskColor, map[string]string{stateKeyName: name})
	case stepAskColor:
		color := acceptedString(responses, keyStep2, "color")
		if color == "" {
			return d.askStep(op, stepAskColor, state.Data)
		}
		return textResult(fmt.Sprintf("Multi-round complete: %s likes %s", state.Data[stateKeyName], color)), nil, nil
	}
	return nil, nil, invalidState(sealed.ErrMalformed)
}

// askStep returns the input request of one multi-round step with a freshly
// sealed state for it.
func (d *Demo) askStep(op string, step int, data map[string]string) (*mcp.CallToolResult, any, error) {
	state, err := d.states.Seal(op, step, data)
	if err != nil {
		return nil, nil, err
	}
	var requests mcp.InputRequestMap
	if step == stepAskName {
		requests = mcp.InputRequestMap{keyStep1: nameRequest("Step 1: What is your name?")}
	} else {
		requests = mcp.InputRequestMap{keyStep2: elicitForm("Step 2: What is your favorite color?",
			stringFieldsSchema("color"))}
	}
	return needInput(requests, state), nil, nil
}

// askWhatIsDeclared asks for every input kind the client declared and none
// other, then completes once each of them is answered.
func askWhatIsDeclared(_ context.Context, req *mcp.CallToolRequest, _ any) (*mcp.CallToolResult, any, error) {
	support := declaredInputs(req.ClientCapabilities())
	requests := mcp.InputRequestMap{}
	if support.elicitation {
		requests[keyUserName] = nameRequest("What is your name?")
	}
	if support.sampling {
		requests[keyGreeting] = samplingRequest("Generate a short greeting", shortSamplingMaxTokens)
	}
	if support.roots {
		requests[keyClientRoots] = rootsRequest()
	}
	if len(requests) == 0 {
		return textResult("The client declared no capability that allows an input request."), nil, nil
	}
	for key := range requests {
		if _, answered := req.Params.InputResponses[key]; !answered {
			return needInput(requests, ""), nil, nil
		}
	}
	return textResult(fmt.Sprintf("All %d declared input kind(s) answered.", len(requests))), nil, nil
}

// inputRequiredPrompt is the prompts/get analogue of greetByName: it asks for
// the context to put into the prompt.
func inputRequiredPrompt(_ context.Context, req *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
	if form := acceptedForm(req.Params.InputResponses, keyUserContext); form != nil {
		text, _ := form["context"].(string)
		return &mcp.GetPromptResult{
			Description: "A prompt built from elicited context",
			Messages:    []*mcp.PromptMessage{userText("Context: " + text)},
		}, nil
	}
	if err := requireInput(declaredInputs(req.ClientCapabilities()), inputElicitation); err != nil {
		return nil, err
	}
	return &mcp.GetPromptResult{InputRequests: mcp.InputRequestMap{
		keyUserContext: elicitForm("What context should the prompt use?", stringFieldsSchema("context")),
	}}, nil
}

// openState verifies a requestState, turning any failure into the JSON-RPC
// invalid-params error a tampered, expired or replayed state deserves.
func (d *Demo) openState(op, state string) (*sealed.Payload, error) {
	payload, err := d.states.Open(op, state)
	if err != nil {
		d.logger.Info("demo: rejected requestState", "operation", op, "reason", err)
		return nil, invalidState(err)
	}
	return payload, nil
}

func invalidState(reason error) error {
	return &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: reason.Error()}
}

// toolOperation names the operation a requestState is bound to, so a state
// minted for one tool cannot drive another.
func toolOperation(tool string) string { return "tools/call " + tool }

// needInput is an input-required tool result.
func needInput(requests mcp.InputRequestMap, state string) *mcp.CallToolResult {
	return &mcp.CallToolResult{InputRequests: requests, RequestState: state}
}

func nameRequest(message string) mcp.InputRequest {
	return elicitForm(message, stringFieldsSchema("name"))
}

func confirmRequest() mcp.InputRequest {
	return elicitForm("Please confirm", map[string]any{
		"type":       "object",
		"properties": map[string]any{"ok": map[string]any{"type": "boolean"}},
		"required":   []string{"ok"},
	})
}

// stringFieldsSchema is a form schema of required string fields.
func stringFieldsSchema(fields ...string) map[string]any {
	props := make(map[string]any, len(fields))
	for _, f := range fields {
		props[f] = map[string]any{"type": "string"}
	}
	return map[string]any{"type": "object", "properties": props, "required": fields}
}

// contactSchema is the form test_elicitation asks for.
func contactSchema() map[string]any {
	return map[string]any{
		"type": "object",
		"properties": map[string]any{
			"username": map[string]any{"type": "string", "description": "User's response"},
			"email":    map[string]any{"type": "string", "description": "User's email address"},
		},
		"required": []string{"username", "email"},
	}
}

// defaultsSchema gives every primitive type a default (SEP-1034).
func defaultsSchema() map[string]any {
	return map[string]any{
		"type": "object",
		"properties": map[string]any{
			"name":  map[string]any{"type": "string", "description": "User name", "default": "John Doe"},
			"age":   map[string]any{"type": "integer", "description": "User age", "default": 30},
			"score": map[string]any{"type": "number", "description": "User score", "default": 95.5},
			"status": map[string]any{
				"type": "string", "description": "User status",
				"enum": []string{"active", "inactive", "pending"}, "default": "active",
			},
			"verified": map[string]any{"type": "boolean", "description": "Verification status", "default": true},
		},
	}
}

// enumsSchema uses each enum style of SEP-1330: plain, titled (oneOf),
// legacy enumNames, and untitled and titled multi-select.
func enumsSchema() map[string]any {
	options := []string{"option1", "option2", "option3"}
	titled := []map[string]any{
		{"const": "value1", "title": "First Option"},
		{"const": "value2", "title": "Second Option"},
		{"const": "value3", "title": "Third Option"},
	}
	return map[string]any{
		"type": "object",
		"properties": map[string]any{
			"untitledSingle": map[string]any{"type": "string", "enum": options},
			"titledSingle":   map[string]any{"type": "string", "oneOf": titled},
			"legacyEnum": map[string]any{
				"type": "string", "enum": []string{"opt1", "opt2", "opt3"},
				"enumNames": []string{"Option One", "Option Two", "Option Three"},
			},
			"untitledMulti": map[string]any{
				"type": "array", "minItems": 1, "maxItems": 3,
				"items": map[string]any{"type": "string", "enum": options},
			},
			"titledMulti": map[string]any{
				"type": "array", "minItems": 1, "maxItems": 3,
				"items": map[string]any{"anyOf": titled},
			},
		},
	}
}

// describeAnswer renders an elicitation answer for a tool result.
func describeAnswer(answer *mcp.ElicitResult) string {
	content, err := json.Marshal(answer.Content)
	if err != nil {
		content = []byte("(unprintable)")
	}
	return fmt.Sprintf("action=%s, content=%s", answer.Action, content)
}
