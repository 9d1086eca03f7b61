package config

import (
	"errors"
	"fmt"
	"maps"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/mcpgate/mcpgate/internal/secret"
)

// BuiltinDemo is the only built-in upstream: mcpgate's own demo MCP server.
const BuiltinDemo = "demo"

// Upstream start modes and instance modes.
const (
	StartBoot             = "boot"
	StartOnDemand         = "on_demand"
	InstancesShared       = "shared"
	InstancesPerPrincipal = "per-principal"
)

// Upstream defaults.
const (
	DefaultStart               = StartBoot
	DefaultInstances           = InstancesShared
	DefaultMaxInstances        = 32
	DefaultUpstreamIdleTimeout = 10 * time.Minute
	DefaultCallTimeout         = 60 * time.Second
)

// ToolSettings tighten one upstream tool.
type ToolSettings struct {
	// Arguments is a JSON Schema the tool's arguments must also satisfy.
	Arguments map[string]any `yaml:"arguments"`
	// CallTimeout bounds a call of this tool instead of the upstream's
	// call_timeout; zero means the upstream's.
	CallTimeout time.Duration `yaml:"call_timeout"`
	// Limit is a token bucket per principal for calls of this tool, on top
	// of limits.per_principal_tool.
	Limit *RateLimit `yaml:"limit"`
}

// The MCP revisions upstreams.<name>.protocol_version may pin.
const (
	ProtocolLegacy = "2025-11-25"
	ProtocolModern = "2026-07-28"
)

// DefaultMaxResultBytes caps an upstream result unless configured.
const DefaultMaxResultBytes = 4 << 20

// UpstreamAuth is the credentials the gateway holds for a url upstream.
type UpstreamAuth struct {
	// Bearer is sent as "Authorization: Bearer ..."; it must be a secret
	// reference, never a literal, so the token is not written in the config.
	Bearer *Value `yaml:"bearer"`
}

// UpstreamTLS configures TLS towards a url upstream. Relative paths are
// relative to the config file's directory.
type UpstreamTLS struct {
	// CA is a PEM CA bundle to verify the upstream with (default: the
	// system roots).
	CA string `yaml:"ca"`
	// ClientCert and ClientKey are a PEM client certificate and its key,
	// for mTLS; both or neither.
	ClientCert string `yaml:"client_cert"`
	ClientKey  string `yaml:"client_key"`
}

// Value is a config string given literally (`production`) or as a reference
// to a secret (`{secret: "env:NAME"}` or `{secret: "file:/path"}`, see
// package secret). Exactly one of Literal and Secret is meaningful: Secret
// when it is non-empty.
type Value struct {
	Literal string `yaml:"-"`
	Secret  string `yaml:"secret"`
}

// UnmarshalYAML accepts a scalar (the literal, as written) or a mapping
// with exactly the key "secret". Unknown keys in the mapping are reported
// by the config's strict walker before decoding, with their key path.
func (v *Value) UnmarshalYAML(n *yaml.Node) error {
	bad := func(format string, args ...any) error {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: ", n.Line) + fmt.Sprintf(format, args...)}}
	}
	switch n.Kind {
	case yaml.ScalarNode:
		var s string
		if err := n.Decode(&s); err != nil {
			return err
		}
		*v = Value{Literal: s}
		return nil
	case yaml.MappingNode:
		if len(n.Content) != 2 || n.Content[0].Value != "secret" {
			return bad("want a string or {secret: env:NAME|file:PATH}")
		}
		ref := n.Content[1]
		if ref.Kind != yaml.ScalarNode || ref.ShortTag() != "!!str" || ref.Value == "" {
			return bad("secret must be a reference string: env:NAME or file:PATH")
		}
		*v = Value{Secret: ref.Value}
		return nil
	}
	return bad("want a string or {secret: env:NAME|file:PATH}")
}

// IsSecret reports whether v is a secret reference rather than a literal.
func (v Value) IsSecret() bool { return v.Secret != "" }

// Resolve returns the literal, or the secret v refers to (see secret.Resolve).
func (v Value) Resolve() (secret.Secret, error) {
	if v.IsSecret() {
		return secret.Resolve(v.Secret)
	}
	return secret.New(v.Literal), nil
}

// IsStdio reports whether u is run as a stdio child: a command, or a builtin
// not served in process.
func (u Upstream) IsStdio() bool {
	return (u.Builtin != "" && !u.InsecureInProcess) || u.Command != nil
}

// IsInProcess reports whether u is a builtin served inside the gateway's
// own process (insecure_in_process).
func (u Upstream) IsInProcess() bool { return u.Builtin != "" && u.InsecureInProcess }

// IsRemote reports whether u is a remote Streamable HTTP server (url).
func (u Upstream) IsRemote() bool { return u.URL != "" }

func (u *Upstream) applyDefaults() {
	setDefault(&u.Start, DefaultStart)
	setDefault(&u.Instances, DefaultInstances)
	setDefault(&u.MaxInstances, DefaultMaxInstances)
	setDefault(&u.IdleTimeout, DefaultUpstreamIdleTimeout)
	setDefault(&u.CallTimeout, DefaultCallTimeout)
	setDefault(&u.MaxResultBytes, DefaultMaxResultBytes)
}

// resolvePaths makes u's relative paths relative to dir: Dir, the TLS files
// and file: secret references. Command[0] stays as written (it may be a bare
// program name looked up in PATH).
func (u *Upstream) resolvePaths(dir string) {
	abs := func(p *string) { absIn(dir, p) }
	absRef := func(v *Value) {
		if kind, target, err := secret.ParseRef(v.Secret); err == nil && kind == secret.KindFile {
			abs(&target)
			v.Secret = secret.KindFile + ":" + target
		}
	}
	abs(&u.Dir)
	if t := u.TLS; t != nil {
		abs(&t.CA)
		abs(&t.ClientCert)
		abs(&t.ClientKey)
	}
	if u.Auth != nil && u.Auth.Bearer != nil {
		absRef(u.Auth.Bearer)
	}
	if u.Sandbox != nil {
		u.Sandbox.resolvePaths(dir)
	}
	for name, v := range u.Env {
		absRef(&v)
		u.Env[name] = v
	}
}

// envNamePattern is what an environment variable name may look like.
var envNamePattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// validate reports the problems of one upstream, named name, under key.
func (u Upstream) validate(name, key string, add addFunc) {
	if !namespacePattern.MatchString(name) {
		add(key, "upstream name %q must be 1-32 characters of letters, digits, _ and -", name)
	}
	kinds := 0
	for _, set := range []bool{u.Builtin != "", u.Command != nil, u.URL != ""} {
		if set {
			kinds++
		}
	}
	if kinds != 1 {
		add(key, "set exactly one of builtin, command or url")
	}
	stdio, remote := u.IsStdio(), u.IsRemote()
	stdioOnly := "applies to stdio upstreams (builtin or command) only"
	if u.IsInProcess() {
		stdioOnly = "applies to stdio children only, not to a builtin served in process (insecure_in_process)"
	}
	if u.InsecureInProcess && u.Builtin == "" {
		add(key+".insecure_in_process", "applies to builtin upstreams only: a command or a url cannot run inside the gateway")
	}

	if u.Builtin != "" && u.Builtin != BuiltinDemo {
		add(key+".builtin", "unknown built-in %q (known: %s)", u.Builtin, BuiltinDemo)
	}
	if u.Command != nil {
		if len(u.Command) == 0 {
			add(key+".command", "must not be empty: give the program and its arguments")
		} else if u.Command[0] == "" {
			add(key+".command[0]", "the program must not be empty")
		}
		for i, a := range u.Command {
			if strings.ContainsRune(a, 0) {
				add(fmt.Sprintf("%s.command[%d]", key, i), "contains a NUL byte")
			}
		}
	}
	if u.Env != nil && !stdio {
		add(key+".env", "%s", stdioOnly)
	}
	for _, n := range slices.Sorted(maps.Keys(u.Env)) {
		v, vkey := u.Env[n], key+".env."+n
		if !envNamePattern.MatchString(n) {
			add(vkey, "%q is not an environment variable name (letters, digits and _, not starting with a digit)", n)
		}
		if v.IsSecret() {
			if _, _, err := secret.ParseRef(v.Secret); err != nil {
				add(vkey+".secret", "%v", err)
			}
		} else if strings.ContainsRune(v.Literal, 0) {
			add(vkey, "contains a NUL byte")
		}
	}
	if u.Dir != "" {
		if !stdio {
			add(key+".dir", "%s", stdioOnly)
		} else if fi, err := os.Stat(u.Dir); err != nil {
			add(key+".dir", "cannot use: %v", err)
		} else if !fi.IsDir() {
			add(key+".dir", "%s is not a directory", u.Dir)
		}
	}

	if remote {
		u.validateURL(key, add)
	} else if u.InsecurePlaintext {
		add(key+".insecure_plaintext", "applies to url upstreams only")
	}
	if u.Auth != nil {
		switch b := u.Auth.Bearer; {
		case !remote:
			add(key+".auth", "applies to url upstreams only")
		case b == nil:
			add(key+".auth.bearer", "required in auth: {bearer: {secret: env:NAME|file:PATH}}")
		case !b.IsSecret():
			add(key+".auth.bearer", "must be a secret reference {secret: env:NAME|file:PATH}, not a literal")
		default:
			if _, _, err := secret.ParseRef(b.Secret); err != nil {
				add(key+".auth.bearer.secret", "%v", err)
			}
		}
	}
	if t := u.TLS; t != nil {
		if !remote {
			add(key+".tls", "applies to url upstreams only")
		}
		switch {
		case t.ClientCert != "" && t.ClientKey == "":
			add(key+".tls.client_key", "required together with %s.tls.client_cert", key)
		case t.ClientKey != "" && t.ClientCert == "":
			add(key+".tls.client_cert", "required together with %s.tls.client_key", key)
		}
		for _, f := range []struct{ key, path string }{
			{key + ".tls.ca", t.CA}, {key + ".tls.client_cert", t.ClientCert}, {key + ".tls.client_key", t.ClientKey},
		} {
			if f.path == "" {
				continue
			}
			if err := checkReadable(f.path); err != nil {
				add(f.key, "%v", err)
			}
		}
	}

	if u.Namespace != nil && *u.Namespace != "" && !namespacePattern.MatchString(*u.Namespace) {
		add(key+".namespace", "%q must be empty or 1-32 characters of letters, digits, _ and -", *u.Namespace)
	}
	if u.Start != StartBoot && u.Start != StartOnDemand {
		add(key+".start", "%q must be %s or %s", u.Start, StartBoot, StartOnDemand)
	}
	switch u.Instances {
	case InstancesShared:
	case InstancesPerPrincipal:
		if !stdio {
			add(key+".instances", "%s %s", InstancesPerPrincipal, stdioOnly)
		}
	default:
		add(key+".instances", "%q must be %s or %s", u.Instances, InstancesShared, InstancesPerPrincipal)
	}
	if u.MaxInstances < 1 {
		add(key+".max_instances", "must be at least 1")
	}
	if u.IdleTimeout <= 0 {
		add(key+".idle_timeout", "must be positive")
	}
	if u.CallTimeout <= 0 {
		add(key+".call_timeout", "must be positive")
	}
	if u.MaxResultBytes < 1 {
		add(key+".max_result_bytes", "must be positive")
	}
	for i, r := range u.Redact {
		if _, err := regexp.Compile(r); err != nil {
			add(fmt.Sprintf("%s.redact[%d]", key, i), "not a regular expression: %v", err)
		} else if regexp.MustCompile(r).MatchString("") {
			add(fmt.Sprintf("%s.redact[%d]", key, i), "%q matches the empty string: it would redact everywhere", r)
		}
	}
	switch u.ProtocolVersion {
	case "", ProtocolLegacy, ProtocolModern:
	default:
		add(key+".protocol_version", "%q must be %s or %s (absent: whichever the upstream speaks)", u.ProtocolVersion, ProtocolLegacy, ProtocolModern)
	}
	for _, tool := range slices.Sorted(maps.Keys(u.Tools)) {
		t := u.Tools[tool]
		if t.Arguments == nil && t.CallTimeout == 0 && t.Limit == nil {
			add(key+".tools."+tool, "sets nothing: give arguments (a JSON Schema the arguments must also satisfy), call_timeout or limit")
		}
		if t.CallTimeout < 0 {
			add(key+".tools."+tool+".call_timeout", "must be positive")
		}
	}
	if !stdio && u.InsecureNoSandbox {
		add(key+".insecure_no_sandbox", "%s", stdioOnly)
	}
	if u.Sandbox != nil {
		switch {
		case !stdio:
			add(key+".sandbox", "%s", stdioOnly)
		case u.InsecureNoSandbox:
			add(key+".sandbox", "has no effect with insecure_no_sandbox: true; remove one")
		default:
			u.Sandbox.validate(key+".sandbox", add)
		}
	}
}

func (u Upstream) validateURL(key string, add addFunc) {
	key += ".url"
	// Report the url only once it is known to hold no credentials.
	p, err := url.Parse(u.URL)
	var ue *url.Error
	switch {
	case errors.As(err, &ue):
		add(key, "not a URL: %v", ue.Err)
		return
	case err != nil:
		add(key, "not a URL: %v", err)
		return
	case p.User != nil:
		add(key, "credentials do not belong in the url: use auth.bearer")
		return
	case p.Scheme != "http" && p.Scheme != "https":
		add(key, "%q: the scheme must be http or https", u.URL)
		return
	case p.Hostname() == "":
		add(key, "%q has no host", u.URL)
		return
	}
	if p.Scheme == "http" && !IsLoopbackHost(p.Hostname()) && !u.InsecurePlaintext {
		add(key, "http:// to a non-loopback host sends calls and credentials in the clear: use https, "+
			"or set insecure_plaintext: true if the network path is otherwise protected")
	}
}

// validateNamespaces reports two upstreams that share a non-empty namespace;
// names is sorted.
func (c *Config) validateNamespaces(names []string, add addFunc) {
	owner := map[string]string{}
	for _, name := range names {
		ns := c.Upstreams[name].UpstreamNamespace(name)
		if ns == "" {
			continue
		}
		if other, ok := owner[ns]; ok {
			add("upstreams."+name+".namespace", "namespace %q is also that of upstream %q: names would collide", ns, other)
			continue
		}
		owner[ns] = name
	}
}
