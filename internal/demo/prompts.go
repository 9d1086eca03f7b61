package demo

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

const (
	promptWithArguments = "test_prompt_with_arguments"

	// maxCompletionValues is the most values completion/complete may return.
	maxCompletionValues = 100

	refPrompt   = "ref/prompt"
	refResource = "ref/resource"
)

// registerPrompts adds every prompt.
func (d *Demo) registerPrompts() {
	d.addSimplePrompt()
	d.server.AddPrompt(&mcp.Prompt{
		Name:        promptWithArguments,
		Title:       "Prompt With Arguments",
		Description: "A prompt with two required arguments.",
		Arguments: []*mcp.PromptArgument{
			{Name: "arg1", Description: "First test argument", Required: true},
			{Name: "arg2", Description: "Second test argument", Required: true},
		},
	}, func(_ context.Context, req *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
		args := req.Params.Arguments
		text := fmt.Sprintf("Prompt with arguments: arg1='%s', arg2='%s'", args["arg1"], args["arg2"])
		return &mcp.GetPromptResult{
			Description: "A prompt with arguments",
			Messages:    []*mcp.PromptMessage{userText(text)},
		}, nil
	})
	d.server.AddPrompt(&mcp.Prompt{
		Name:        "test_prompt_with_embedded_resource",
		Title:       "Prompt With Embedded Resource",
		Description: "A prompt that embeds the resource named by its argument.",
		Arguments: []*mcp.PromptArgument{
			{Name: "resourceUri", Description: "URI of the resource to embed", Required: true},
		},
	}, func(_ context.Context, req *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
		uri := req.Params.Arguments["resourceUri"]
		return &mcp.GetPromptResult{
			Description: "A prompt with an embedded resource",
			Messages: []*mcp.PromptMessage{
				{Role: "user", Content: embeddedText(uri, "Embedded resource content for testing.")},
				userText("Please process the embedded resource above."),
			},
		}, nil
	})
	d.server.AddPrompt(&mcp.Prompt{
		Name:        "test_prompt_with_image",
		Title:       "Prompt With Image",
		Description: "A prompt that includes an image.",
	}, func(context.Context, *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
		return &mcp.GetPromptResult{
			Description: "A prompt with an image",
			Messages: []*mcp.PromptMessage{
				{Role: "user", Content: imageContent()},
				userText("Please analyze the image above."),
			},
		}, nil
	})
	d.server.AddPrompt(&mcp.Prompt{
		Name:        "test_input_required_result_prompt",
		Title:       "Prompt Requiring Input",
		Description: "Asks for context by elicitation before it can be built (SEP-2322).",
	}, inputRequiredPrompt)
}

// addSimplePrompt registers test_simple_prompt. test_trigger_prompt_change
// calls it again to signal a prompt-list change without changing the list.
func (d *Demo) addSimplePrompt() {
	d.server.AddPrompt(&mcp.Prompt{
		Name:        "test_simple_prompt",
		Title:       "Simple Test Prompt",
		Description: "A prompt without arguments.",
	}, func(context.Context, *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
		return &mcp.GetPromptResult{
			Description: "A simple test prompt",
			Messages:    []*mcp.PromptMessage{userText("This is a simple prompt for testing.")},
		}, nil
	})
}

func userText(text string) *mcp.PromptMessage {
	return &mcp.PromptMessage{Role: "user", Content: &mcp.TextContent{Text: text}}
}

// complete suggests values for prompt and resource-template arguments: the
// candidates for the argument that start with what was typed so far.
func (d *Demo) complete(_ context.Context, req *mcp.CompleteRequest) (*mcp.CompleteResult, error) {
	typed := strings.ToLower(req.Params.Argument.Value)
	matches := []string{} // never null on the wire
	for _, c := range completionCandidates(req.Params.Ref, req.Params.Argument.Name) {
		if strings.HasPrefix(strings.ToLower(c), typed) {
			matches = append(matches, c)
		}
	}
	values := matches[:min(len(matches), maxCompletionValues)]
	return &mcp.CompleteResult{Completion: mcp.CompletionResultDetails{
		Values:  values,
		Total:   len(matches),
		HasMore: len(values) < len(matches),
	}}, nil
}

// completionCandidates lists the known values of an argument, or none for an
// unknown reference.
func completionCandidates(ref *mcp.CompleteReference, argument string) []string {
	if ref == nil {
		return nil
	}
	switch {
	case ref.Type == refPrompt && ref.Name == promptWithArguments && slices.Contains([]string{"arg1", "arg2"}, argument):
		return []string{"paris", "park", "party", "test", "testing", "tested"}
	case ref.Type == refResource && ref.URI == templateURI && argument == "id":
		return []string{"1", "2", "3", "42", "123"}
	}
	return nil
}
