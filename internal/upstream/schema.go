package upstream

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/google/jsonschema-go/jsonschema"

	"github.com/mcpgate/mcpgate/internal/strictjson"
)

// Limits on an upstream's tool input schema: it is untrusted input, compiled
// once when the catalog loads.
const (
	maxSchemaBytes = 256 << 10
	maxSchemaDepth = 32
)

// compileSchema compiles a tool's input schema (JSON Schema 2020-12 or
// draft-07). Only references inside the schema resolve: a remote $ref is an
// error, never a fetch.
func compileSchema(raw any) (*jsonschema.Resolved, error) {
	b, err := json.Marshal(raw)
	if err != nil {
		return nil, fmt.Errorf("compile input schema: %w", err)
	}
	lim := strictjson.DefaultLimits()
	lim.MaxBytes, lim.MaxDepth = maxSchemaBytes, maxSchemaDepth
	if err := strictjson.Check(b, lim); err != nil {
		return nil, fmt.Errorf("compile input schema: %w", err)
	}
	var s jsonschema.Schema
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("compile input schema: %w", err)
	}
	// Resolve with no loader: a $ref outside the schema fails here.
	resolved, err := s.Resolve(nil)
	if err != nil {
		return nil, fmt.Errorf("compile input schema: %w", err)
	}
	return resolved, nil
}

// ErrArguments marks arguments that do not match a tool's input schema.
var ErrArguments = errors.New("arguments do not match the tool's input schema")

// ValidateArguments checks a tools/call's raw arguments against the input
// schema of the tool the client calls name; missing arguments are validated
// as {}. See ValidateInstance.
func (c *Catalog) ValidateArguments(name string, args json.RawMessage) error {
	var instance any = map[string]any{}
	if len(args) > 0 {
		if err := json.Unmarshal(args, &instance); err != nil {
			return fmt.Errorf("%w: not JSON", ErrArguments)
		}
	}
	return c.ValidateInstance(name, instance)
}

// ValidateInstance checks decoded arguments against the input schema of the
// tool the client calls name. It returns nil for a name the catalog does not
// serve (the SDK answers that), and an error wrapping ErrArguments, naming
// the failing path and keyword, for arguments the upstream must not see.
func (c *Catalog) ValidateInstance(name string, instance any) error {
	c.mu.Lock()
	e, ok := c.tools[name]
	c.mu.Unlock()
	if !ok {
		return nil
	}
	if err := e.schema.Validate(instance); err != nil {
		return fmt.Errorf("%w: %v", ErrArguments, err)
	}
	return nil
}
