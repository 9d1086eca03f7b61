package config

// Default returns the embedded default configuration: a loopback listener
// fronting the built-in demo server. It has no API key: the caller generates
// one at start (see gateway), so no key is ever baked into the binary. Its
// policy lets every principal (that is, the generated key) use everything.
func Default() *Config {
	none := ""
	c := &Config{
		Source: "embedded default",
		Upstreams: map[string]Upstream{
			// Sandboxed like any stdio upstream: nothing granted, no network.
			BuiltinDemo: {Builtin: BuiltinDemo, Namespace: &none},
		},
		Policy: Policy{Rules: []PolicyRule{{
			Name:       "embedded-default",
			Principals: []string{PolicyWildcard},
			Allow:      &PolicyTargets{Tools: []string{"*"}, Resources: []string{"**"}, Prompts: []string{"*"}},
		}}},
	}
	c.ApplyDefaults()
	return c
}
