package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

const (
	staticTextURI      = "test://static-text"
	staticBinaryURI    = "test://static-binary"
	watchedResourceURI = "test://watched-resource"

	// The template's URI is templatePrefix + id + templateSuffix.
	templateURI    = "test://template/{id}/data"
	templatePrefix = "test://template/"
	templateSuffix = "/data"

	jsonMIMEType = "application/json"
)

// registerResources adds the static resources, the watched resource and the
// resource template.
func (d *Demo) registerResources() {
	d.server.AddResource(&mcp.Resource{
		Name:        "static-text",
		Description: "A static text resource.",
		MIMEType:    textMIMEType,
		URI:         staticTextURI,
	}, func(context.Context, *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
		return textContents(staticTextURI, "This is the content of the static text resource."), nil
	})
	d.server.AddResource(&mcp.Resource{
		Name:        "static-binary",
		Description: "A static binary resource (a 1x1 PNG image).",
		MIMEType:    pngMIMEType,
		URI:         staticBinaryURI,
	}, func(context.Context, *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
		return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{
			{URI: staticBinaryURI, MIMEType: pngMIMEType, Blob: []byte(pngPixel)},
		}}, nil
	})
	d.server.AddResource(&mcp.Resource{
		Name:        "watched-resource",
		Description: "A text resource that changes every few seconds; subscribe to be told when.",
		MIMEType:    textMIMEType,
		URI:         watchedResourceURI,
	}, func(context.Context, *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
		text := fmt.Sprintf("Watched resource content (revision %d)", d.watchedRevision.Load())
		return textContents(watchedResourceURI, text), nil
	})
	d.server.AddResourceTemplate(&mcp.ResourceTemplate{
		Name:        "template",
		Description: "A JSON resource for any id, substituted from the URI.",
		MIMEType:    jsonMIMEType,
		URITemplate: templateURI,
	}, readTemplate)
}

// templateData is the body of a templated resource.
type templateData struct {
	ID           string `json:"id"`
	TemplateTest bool   `json:"templateTest"`
	Data         string `json:"data"`
}

func readTemplate(_ context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
	uri := req.Params.URI
	id, ok := templateID(uri)
	if !ok {
		return nil, mcp.ResourceNotFoundError(uri)
	}
	body, err := json.Marshal(templateData{ID: id, TemplateTest: true, Data: "Data for ID: " + id})
	if err != nil {
		return nil, fmt.Errorf("encode template resource: %w", err)
	}
	return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{
		{URI: uri, MIMEType: jsonMIMEType, Text: string(body)},
	}}, nil
}

// templateID extracts {id} from a templated URI. The SDK has already matched
// the template; this also rejects ids that would span path segments.
func templateID(uri string) (string, bool) {
	rest, ok := strings.CutPrefix(uri, templatePrefix)
	if !ok {
		return "", false
	}
	id, ok := strings.CutSuffix(rest, templateSuffix)
	if !ok || id == "" || strings.Contains(id, "/") {
		return "", false
	}
	return id, true
}

// subscribe accepts subscriptions to the server's fixed resources; the SDK
// itself records the subscription and routes ResourceUpdated to it.
func (d *Demo) subscribe(_ context.Context, req *mcp.SubscribeRequest) error {
	if !isFixedResource(req.Params.URI) {
		return mcp.ResourceNotFoundError(req.Params.URI)
	}
	return nil
}

func (d *Demo) unsubscribe(context.Context, *mcp.UnsubscribeRequest) error {
	// Nothing to undo: the SDK forgets the subscription itself.
	return nil
}

func isFixedResource(uri string) bool {
	switch uri {
	case staticTextURI, staticBinaryURI, watchedResourceURI:
		return true
	}
	return false
}

func textContents(uri, text string) *mcp.ReadResourceResult {
	return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{
		{URI: uri, MIMEType: textMIMEType, Text: text},
	}}
}
