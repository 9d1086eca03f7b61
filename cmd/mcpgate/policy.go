package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/mcpgate/mcpgate/internal/config"
	"github.com/mcpgate/mcpgate/internal/policy"
)

const policyUsage = `usage: mcpgate policy explain --config FILE --principal ID (--tool NAME [--args JSON] | --resource URI | --prompt NAME [--args JSON]) [--roles R1,R2]`

// exitCode ends the program with a code and no message: its output is on
// stdout already.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit %d", int(e)) }

func policyCmd(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "explain" {
		return usageError{"policy: " + policyUsage}
	}
	fs := newFlags("policy explain", stderr)
	configPath := fs.String("config", "", "config file (required)")
	principal := fs.String("principal", "", "the API key id to decide for (omit with auth.insecure_disable_auth: the anonymous caller)")
	roles := fs.String("roles", "", "comma-separated roles, for a principal that is not an API key (a JWT subject); replaces the key's roles")
	tool := fs.String("tool", "", "a tool name as clients see it")
	resource := fs.String("resource", "", "a resource URI")
	prompt := fs.String("prompt", "", "a prompt name")
	argsJSON := fs.String("args", "", "the arguments, a JSON object")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if *configPath == "" {
		return usageError{"policy explain: --config FILE is required"}
	}
	var req policy.Request
	n := 0
	for _, t := range []struct {
		kind  policy.Kind
		value string
	}{{policy.Tool, *tool}, {policy.Resource, *resource}, {policy.Prompt, *prompt}} {
		if t.value != "" {
			req, n = policy.Request{Kind: t.kind, Name: t.value}, n+1
		}
	}
	if n != 1 {
		return usageError{"policy explain: give exactly one of --tool, --resource, --prompt"}
	}
	if *argsJSON != "" {
		if req.Kind == policy.Resource {
			return usageError{"policy explain: --args goes with --tool or --prompt"}
		}
		dec := json.NewDecoder(bytes.NewReader([]byte(*argsJSON)))
		if err := dec.Decode(&req.Args); err != nil || req.Args == nil || dec.More() {
			return usageError{"policy explain: --args must be one JSON object"}
		}
	}

	cfg, err := config.Load(*configPath)
	if err != nil {
		return err
	}
	p, err := policy.Compile(cfg.Policy)
	if err != nil {
		return fmt.Errorf("%s: %w", *configPath, err)
	}
	subject, err := explainSubject(cfg, *principal, *roles)
	if err != nil {
		return err
	}

	d := p.Decide(subject, req)
	line := "deny: " + d.Reason
	if d.Allow {
		line = fmt.Sprintf("allow: rule %q", d.Rule)
	}
	if desc := p.Describe(d.Rule); desc != "" {
		line += " (" + desc + ")"
	}
	fmt.Fprintln(stdout, line)
	if !d.Allow {
		return exitCode(exitError)
	}
	return nil
}

// explainSubject builds the principal as authentication would: from the
// config's API key or certificate principal (auth.mtls) with that id, or
// from --roles.
func explainSubject(cfg *config.Config, id, roles string) (policy.Subject, error) {
	var rs []string
	if roles != "" {
		rs = strings.Split(roles, ",")
		for _, r := range rs {
			if !config.ValidID(r) {
				return policy.Subject{}, usageError{fmt.Sprintf("policy explain: --roles: %q is not a valid role name", r)}
			}
		}
	}
	if id == "" {
		if !cfg.Auth.InsecureDisableAuth {
			return policy.Subject{}, usageError{"policy explain: --principal ID is required"}
		}
		if rs != nil {
			return policy.Subject{}, usageError{"policy explain: --roles needs --principal"}
		}
		return policy.Subject{}, nil // the anonymous caller
	}
	if rs == nil {
		configured, ok := configuredRoles(cfg, id)
		if !ok {
			return policy.Subject{}, usageError{fmt.Sprintf("policy explain: no API key or auth.mtls principal has id %q; give --roles for another principal", id)}
		}
		rs = configured
	}
	return policy.Subject{ID: id, Roles: rs, Authenticated: true}, nil
}

// configuredRoles returns the roles of the principal with that id among
// those the config fixes: API keys and certificate principals. Config
// validation keeps ids unique across both.
func configuredRoles(cfg *config.Config, id string) ([]string, bool) {
	if i := slices.IndexFunc(cfg.Auth.APIKeys, func(k config.APIKey) bool { return k.ID == id }); i >= 0 {
		return cfg.Auth.APIKeys[i].Roles, true
	}
	if m := cfg.Auth.MTLS; m != nil {
		if i := slices.IndexFunc(m.Principals, func(p config.MTLSPrincipal) bool { return p.ID == id }); i >= 0 {
			return m.Principals[i].Roles, true
		}
	}
	return nil, false
}

// policyFindings compiles the config's policy and returns `check`'s
// warnings about it; a policy that does not compile is an error.
func policyFindings(cfg *config.Config) ([]string, error) {
	p, err := policy.Compile(cfg.Policy)
	if err != nil {
		return nil, err
	}
	var roles, ids []string
	for _, k := range cfg.Auth.APIKeys {
		roles = append(roles, k.Roles...)
		ids = append(ids, k.ID)
	}
	if m := cfg.Auth.MTLS; m != nil {
		// Certificate principals are configured as fixed as API keys are.
		for _, c := range m.Principals {
			roles = append(roles, c.Roles...)
			ids = append(ids, c.ID)
		}
	}
	return p.Findings(roles, ids), nil
}
