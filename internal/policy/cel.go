package policy

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/interpreter"
)

// CostLimit bounds the work one condition may do in one evaluation (CEL's
// runtime cost units, roughly one per operation and per element or byte
// traversed). A condition that exceeds it is treated as failed: false for an
// allow rule, true for a deny rule.
const CostLimit = 10_000

// Parser bounds: a condition is a line or two in a config file.
const (
	maxExpressionSize = 4096
	maxRecursionDepth = 32
)

// The variables a condition can use.
const (
	varArgs      = "args"      // map(string, dyn): the tool or prompt arguments; empty for resources
	varPrincipal = "principal" // map(string, dyn): id, roles, scopes, authenticated
	varName      = "name"      // string: the tool or prompt name, or the resource URI
	varKind      = "kind"      // string: "tool", "resource" or "prompt"
)

// newEnv is the CEL environment conditions are compiled in: the standard
// library and macros, four variables, and JSON-friendly numbers.
func newEnv() (*cel.Env, error) {
	return cel.NewEnv(
		cel.Variable(varArgs, cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable(varPrincipal, cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable(varName, cel.StringType),
		cel.Variable(varKind, cel.StringType),
		cel.CustomTypeAdapter(jsonAdapter{}),
		cel.CrossTypeNumericComparisons(true),
		cel.ParserExpressionSizeLimit(maxExpressionSize),
		cel.ParserRecursionLimit(maxRecursionDepth),
	)
}

// condition is one compiled `when`.
type condition struct {
	source string
	prg    cel.Program
	// alwaysTrue: the condition is true whatever the request (a finding).
	alwaysTrue bool
}

func compileCondition(env *cel.Env, source string) (*condition, error) {
	ast, iss := env.Compile(source)
	if iss.Err() != nil {
		return nil, errors.New(strings.TrimSpace(iss.Err().Error()))
	}
	if !ast.OutputType().IsExactType(cel.BoolType) {
		return nil, fmt.Errorf("condition is of type %s, not bool (compare a dyn value explicitly, e.g. `args.flag == true`)",
			ast.OutputType())
	}
	prg, err := env.Program(ast, cel.CostLimit(CostLimit))
	if err != nil {
		return nil, err
	}
	c := &condition{source: source, prg: prg}
	c.alwaysTrue = alwaysTrue(env, ast)
	return c, nil
}

// alwaysTrue evaluates the condition with every variable unknown: if it is
// true anyway, no request can make it false.
func alwaysTrue(env *cel.Env, ast *cel.Ast) bool {
	prg, err := env.Program(ast, cel.EvalOptions(cel.OptPartialEval), cel.CostLimit(CostLimit))
	if err != nil {
		return false
	}
	vars, err := cel.PartialVars(map[string]any{},
		cel.AttributePattern(varArgs), cel.AttributePattern(varPrincipal),
		cel.AttributePattern(varName), cel.AttributePattern(varKind))
	if err != nil {
		return false
	}
	out, _, err := prg.Eval(vars)
	return err == nil && out == types.True
}

// eval runs the condition; an error (a missing key, a type mismatch, the
// cost limit) is returned for the caller to fail closed.
func (c *condition) eval(a *activation) (result bool, err error) {
	defer func() {
		// CEL is not expected to panic, but a panic here must not take the
		// gateway down or, worse, be read as a decision.
		if r := recover(); r != nil {
			result, err = false, fmt.Errorf("condition panicked: %v", r)
		}
	}()
	out, _, err := c.prg.Eval(a)
	if err != nil {
		return false, err
	}
	b, ok := out.(types.Bool)
	if !ok {
		return false, fmt.Errorf("condition gave %s, not bool", out.Type())
	}
	return bool(b), nil
}

// activation resolves the four variables for one request without building a
// map per evaluation.
type activation struct {
	args      map[string]any
	principal map[string]any
	name      string
	kind      string
}

var emptyArgs = map[string]any{}

func newActivation(s Subject, r Request) *activation {
	args := r.Args
	if args == nil {
		args = emptyArgs
	}
	roles, scopes := s.Roles, s.Scopes
	if roles == nil {
		roles = []string{}
	}
	if scopes == nil {
		scopes = []string{}
	}
	return &activation{
		args: args,
		principal: map[string]any{
			"id": s.ID, "roles": roles, "scopes": scopes, "authenticated": s.Authenticated,
		},
		name: r.Name,
		kind: string(r.Kind),
	}
}

func (a *activation) ResolveName(name string) (any, bool) {
	switch name {
	case varArgs:
		return a.args, true
	case varPrincipal:
		return a.principal, true
	case varName:
		return a.name, true
	case varKind:
		return a.kind, true
	}
	return nil, false
}

func (a *activation) Parent() interpreter.Activation { return nil }

// jsonAdapter is CEL's default adapter, extended to what decoded JSON holds:
// json.Number becomes an int when it is one, else a double; nested maps and
// lists keep using this adapter.
type jsonAdapter struct{}

func (j jsonAdapter) NativeToValue(v any) ref.Val {
	switch v := v.(type) {
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return types.Int(i)
		}
		f, err := v.Float64()
		if err != nil || math.IsInf(f, 0) {
			return types.NewErr("number %q out of range", string(v))
		}
		return types.Double(f)
	case map[string]any:
		return types.NewStringInterfaceMap(j, v)
	case []any:
		return types.NewDynamicList(j, v)
	}
	return types.DefaultTypeAdapter.NativeToValue(v)
}
