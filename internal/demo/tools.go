package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

const (
	// pngPixel is a 1x1 PNG image, the smallest valid image content.
	pngPixel = "\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89" +
		"\x00\x00\x00\x0dIDATx\xdac\xfc\xcf\xc0\xf0\x1f\x00\x05\x05\x02\x00\x5f\xc8\xf1\xd2" +
		"\x00\x00\x00\x00IEND\xaeB\x60\x82"
	pngMIMEType = "image/png"

	// silentWAV is one 16-bit mono sample of silence at 8 kHz.
	silentWAV = "RIFF\x26\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00\x40\x1f\x00\x00\x80\x3e\x00\x00\x02\x00\x10\x00" +
		"data\x02\x00\x00\x00\x00\x00"
	wavMIMEType = "audio/wav"

	textMIMEType = "text/plain"

	// stepDelay spaces the notifications of the logging and progress tools
	// so clients see them arrive one by one, as the fixture specifies.
	stepDelay = 50 * time.Millisecond
	// progressTotal is the total the progress tool reports against.
	progressTotal = 100
)

// registerTools adds every tool. Registration order is irrelevant: the SDK
// lists tools sorted by name, which keeps tools/list deterministic.
func (d *Demo) registerTools() {
	d.addEchoTool()
	d.registerContentTools()
	d.registerNotifyingTools()
	d.registerDiagnosticTools()
	d.registerInputTools()
	d.registerRoundTripTools()
}

// echoInput is the argument of the echo tool.
type echoInput struct {
	Message string `json:"message" jsonschema:"the text to send back"`
}

// addEchoTool registers echo, the cheapest useful tool, used by benchmarks.
// test_trigger_tool_change calls it again to signal a tool-list change
// without changing the list.
func (d *Demo) addEchoTool() {
	mcp.AddTool(d.server, &mcp.Tool{
		Name:        "echo",
		Title:       "Echo",
		Description: "Returns the given message unchanged as text content.",
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true, IdempotentHint: true, OpenWorldHint: new(false)},
	}, echo)
}

func echo(_ context.Context, _ *mcp.CallToolRequest, in echoInput) (*mcp.CallToolResult, any, error) {
	return textResult(in.Message), nil, nil
}

// registerContentTools adds the tools that return one kind of content each.
func (d *Demo) registerContentTools() {
	addStaticTool(d.server, "test_simple_text", "Returns a single text block.", func() *mcp.CallToolResult {
		return textResult("This is a simple text response for testing.")
	})
	addStaticTool(d.server, "test_image_content", "Returns a single PNG image block.", func() *mcp.CallToolResult {
		return &mcp.CallToolResult{Content: []mcp.Content{imageContent()}}
	})
	addStaticTool(d.server, "test_audio_content", "Returns a single WAV audio block.", func() *mcp.CallToolResult {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.AudioContent{Data: []byte(silentWAV), MIMEType: wavMIMEType}}}
	})
	addStaticTool(d.server, "test_embedded_resource", "Returns a single embedded text resource.", func() *mcp.CallToolResult {
		return &mcp.CallToolResult{Content: []mcp.Content{
			embeddedText("test://embedded-resource", "This is an embedded resource content."),
		}}
	})
	addStaticTool(d.server, "test_multiple_content_types", "Returns text, image and embedded resource blocks together.",
		func() *mcp.CallToolResult {
			return &mcp.CallToolResult{Content: []mcp.Content{
				&mcp.TextContent{Text: "Multiple content types test:"},
				imageContent(),
				embeddedText("test://mixed-content-resource", `{"test":"data","value":123}`),
			}}
		})

	mcp.AddTool(d.server, &mcp.Tool{
		Name:        "test_error_handling",
		Description: "Always fails, to show how a tool execution error (isError: true) is reported.",
	}, func(context.Context, *mcp.CallToolRequest, any) (*mcp.CallToolResult, any, error) {
		// A plain error (not a *jsonrpc.Error) becomes a tool result with
		// isError set, which is what lets a model see and correct it.
		return nil, nil, errors.New("this tool intentionally returns an error for testing")
	})
}

// addStaticTool registers an argument-less tool whose result build makes.
// Each call gets a fresh result because the SDK stamps fields (resultType)
// onto the result it is given.
func addStaticTool(s *mcp.Server, name, description string, build func() *mcp.CallToolResult) {
	mcp.AddTool(s, &mcp.Tool{Name: name, Description: description},
		func(context.Context, *mcp.CallToolRequest, any) (*mcp.CallToolResult, any, error) {
			return build(), nil, nil
		})
}

// registerNotifyingTools adds the tools that send notifications while they run.
func (d *Demo) registerNotifyingTools() {
	mcp.AddTool(d.server, &mcp.Tool{
		Name:        "test_tool_with_logging",
		Description: "Sends three info log notifications, 50ms apart, while it runs.",
	}, toolWithLogging)
	mcp.AddTool(d.server, &mcp.Tool{
		Name:        "test_tool_with_progress",
		Description: "Reports progress 0, 50 and 100 of 100 against the request's progress token and returns the token.",
	}, toolWithProgress)
	mcp.AddTool(d.server, &mcp.Tool{
		Name:        "test_logging_tool",
		Description: "Tries to send one log notification; it is only delivered when the request opted in with a log level.",
	}, func(ctx context.Context, req *mcp.CallToolRequest, _ any) (*mcp.CallToolResult, any, error) {
		logInfo(ctx, req.Session, "test_logging_tool executed")
		return textResult("Log attempted; delivery depends on the request's log level."), nil, nil
	})
}

func toolWithLogging(ctx context.Context, req *mcp.CallToolRequest, _ any) (*mcp.CallToolResult, any, error) {
	steps := []string{"Tool execution started", "Tool processing data", "Tool execution completed"}
	for i, msg := range steps {
		if i > 0 {
			if err := pause(ctx, stepDelay); err != nil {
				return nil, nil, err
			}
		}
		logInfo(ctx, req.Session, msg)
	}
	return textResult("Tool with logging executed successfully"), nil, nil
}

func toolWithProgress(ctx context.Context, req *mcp.CallToolRequest, _ any) (*mcp.CallToolResult, any, error) {
	token := req.Params.GetProgressToken()
	for i, progress := range []float64{0, 50, 100} {
		if i > 0 {
			if err := pause(ctx, stepDelay); err != nil {
				return nil, nil, err
			}
		}
		if token == nil {
			continue // nobody asked for progress
		}
		err := req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{
			ProgressToken: token,
			Progress:      progress,
			Total:         progressTotal,
			Message:       fmt.Sprintf("Completed %.0f of %d", progress, progressTotal),
		})
		if err != nil {
			return nil, nil, fmt.Errorf("notify progress: %w", err)
		}
	}
	if token == nil {
		return textResult("Progress tool finished without a progress token."), nil, nil
	}
	// The fixture answers with the token it reported against.
	return textResult(fmt.Sprint(token)), nil, nil
}

// registerDiagnosticTools adds the tools the stateless (SEP-2575) and schema
// scenarios probe the server with.
func (d *Demo) registerDiagnosticTools() {
	mcp.AddTool(d.server, &mcp.Tool{
		Name:        "test_missing_capability",
		Description: "Requires the client sampling capability and fails with -32021 when the request did not declare it.",
	}, func(_ context.Context, req *mcp.CallToolRequest, _ any) (*mcp.CallToolResult, any, error) {
		if err := requireInput(declaredInputs(req.ClientCapabilities()), inputSampling); err != nil {
			return nil, nil, err
		}
		return textResult("The client declared the sampling capability."), nil, nil
	})
	mcp.AddTool(d.server, &mcp.Tool{
		Name: "test_streaming_elicitation",
		Description: "Streams progress (when asked for) and then its result; the response stream never " +
			"carries a server-to-client request.",
	}, streamingWithoutRequests)
	mcp.AddTool(d.server, &mcp.Tool{
		Name:        "test_trigger_tool_change",
		Description: "Re-registers the echo tool, which announces a tools list change without changing the list.",
	}, func(context.Context, *mcp.CallToolRequest, any) (*mcp.CallToolResult, any, error) {
		d.addEchoTool()
		return textResult("tools list change announced"), nil, nil
	})
	mcp.AddTool(d.server, &mcp.Tool{
		Name:        "test_trigger_prompt_change",
		Description: "Re-registers test_simple_prompt, which announces a prompts list change without changing the list.",
	}, func(context.Context, *mcp.CallToolRequest, any) (*mcp.CallToolResult, any, error) {
		d.addSimplePrompt()
		return textResult("prompts list change announced"), nil, nil
	})
	mcp.AddTool(d.server, &mcp.Tool{
		Name:        "json_schema_2020_12_tool",
		Description: "Takes an input schema using JSON Schema 2020-12 features ($defs, $anchor, allOf/anyOf, if/then/else).",
		InputSchema: json.RawMessage(jsonSchema202012),
	}, func(_ context.Context, _ *mcp.CallToolRequest, in json.RawMessage) (*mcp.CallToolResult, any, error) {
		return textResult(fmt.Sprintf("JSON Schema 2020-12 tool called with: %s", in)), nil, nil
	})
	mcp.AddTool(d.server, &mcp.Tool{
		Name:        "test_x_mcp_header",
		Description: "Has a region argument mirrored into the Mcp-Param-Region header (SEP-2243).",
		InputSchema: json.RawMessage(xMCPHeaderSchema),
	}, func(_ context.Context, _ *mcp.CallToolRequest, in xMCPHeaderInput) (*mcp.CallToolResult, any, error) {
		return textResult("region=" + in.Region), nil, nil
	})
}

// streamingWithoutRequests reports progress when the caller supplied a token
// and returns a plain result. In 2026-07-28 a response stream may carry only
// notifications and the response, never a request of its own.
func streamingWithoutRequests(ctx context.Context, req *mcp.CallToolRequest, _ any) (*mcp.CallToolResult, any, error) {
	if token := req.Params.GetProgressToken(); token != nil {
		err := req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{ProgressToken: token, Progress: 1, Total: 1})
		if err != nil {
			return nil, nil, fmt.Errorf("notify progress: %w", err)
		}
	}
	return textResult("stream carried notifications and the result only"), nil, nil
}

// jsonSchema202012 is the input schema of json_schema_2020_12_tool; the
// conformance suite checks that every keyword survives tools/list verbatim.
const jsonSchema202012 = `{
	"$schema": "https://json-schema.org/draft/2020-12/schema",
	"type": "object",
	"$defs": {
		"address": {
			"$anchor": "addressDef",
			"type": "object",
			"properties": {
				"street": {"type": "string"},
				"city": {"type": "string"}
			}
		}
	},
	"properties": {
		"name": {"type": "string"},
		"address": {"$ref": "#/$defs/address"},
		"contactMethod": {"type": "string", "enum": ["phone", "email"]},
		"phone": {"type": "string"},
		"email": {"type": "string"}
	},
	"allOf": [
		{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}
	],
	"if": {
		"properties": {"contactMethod": {"const": "phone"}},
		"required": ["contactMethod"]
	},
	"then": {"required": ["phone"]},
	"else": {"required": ["email"]},
	"additionalProperties": false
}`

// xMCPHeaderSchema mirrors region into an Mcp-Param-Region header.
const xMCPHeaderSchema = `{
	"type": "object",
	"properties": {
		"region": {"type": "string", "description": "mirrored into Mcp-Param-Region", "x-mcp-header": "Region"},
		"level": {"type": "integer", "description": "not mirrored"}
	}
}`

type xMCPHeaderInput struct {
	Region string `json:"region,omitempty"`
	Level  int    `json:"level,omitempty"`
}

// logInfo sends an info log notification. The SDK drops it unless the client
// asked for logs (logging/setLevel in 2025-11-25, the per-request log level
// in 2026-07-28), and a failure to log must never fail the tool.
func logInfo(ctx context.Context, ss *mcp.ServerSession, msg string) {
	//lint:ignore SA1019 logging is deprecated in 2026-07-28 but still required by 2025-11-25 clients.
	_ = ss.Log(ctx, &mcp.LoggingMessageParams{Level: "info", Data: msg})
}

// pause waits for d or until ctx is done, whichever comes first.
func pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func textResult(text string) *mcp.CallToolResult {
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: text}}}
}

func imageContent() *mcp.ImageContent {
	return &mcp.ImageContent{Data: []byte(pngPixel), MIMEType: pngMIMEType}
}

func embeddedText(uri, text string) *mcp.EmbeddedResource {
	return &mcp.EmbeddedResource{Resource: &mcp.ResourceContents{URI: uri, MIMEType: textMIMEType, Text: text}}
}
