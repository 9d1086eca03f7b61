// Package config decodes mcpgate's YAML configuration strictly, applies explicit
// defaults and validates the result, reporting every problem at once.
//
// Strictness is a security property here: a misspelt key (say "alowed_hosts")
// silently ignored would leave a default in force that the operator believes
// they changed. Every unknown key is therefore an error that names the file,
// the line and the full key path.
package config

import (
	"net"
	"net/netip"
	"strings"
	"time"
)

// Config is the whole gateway configuration.
type Config struct {
	Listen    Listen              `yaml:"listen"`
	Auth      Auth                `yaml:"auth"`
	Policy    Policy              `yaml:"policy"`
	Upstreams map[string]Upstream `yaml:"upstreams"`
	// ToolIntegrity pins the upstreams' definitions (see ToolIntegrity).
	ToolIntegrity ToolIntegrity `yaml:"tool_integrity"`
	Audit         Audit         `yaml:"audit"`
	Admin         Admin         `yaml:"admin"`
	Limits        Limits        `yaml:"limits"`
	Alerts        Alerts        `yaml:"alerts"`
	Tracing       Tracing       `yaml:"tracing"`

	// RunAs is the user ("name", "uid", or "user:group") a gateway started
	// as root becomes once its ports are bound; empty keeps the user it was
	// started as.
	RunAs string `yaml:"run_as"`

	// Source names where the config came from ("embedded default" or a path);
	// it is not a YAML key.
	Source string `yaml:"-"`
}

// Listen configures the MCP listener and its HTTP hardening.
type Listen struct {
	// Address is host:port. Loopback by default.
	Address string `yaml:"address"`
	// AllowedHosts lists the Host header values accepted (host or host:port).
	// Empty means the loopback names, and is only allowed on a loopback address.
	AllowedHosts []string `yaml:"allowed_hosts"`
	// AllowedOrigins lists the Origin header values accepted besides the
	// request's own origin (scheme://host[:port]).
	AllowedOrigins []string `yaml:"allowed_origins"`
	// MaxBodyBytes caps a request body; larger bodies get 413.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// MaxHeaderBytes caps the request line and headers.
	MaxHeaderBytes int `yaml:"max_header_bytes"`
	// MaxJSONDepth caps the nesting of objects and arrays in a request body.
	MaxJSONDepth int `yaml:"max_json_depth"`
	// ReadHeaderTimeout bounds the time to read request headers (slowloris).
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	// ReadTimeout bounds the time to read a request body once headers are in.
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// WriteTimeout bounds the time to write one POST response, streamed or not.
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// StreamTimeout bounds one long-lived GET event stream (legacy era).
	StreamTimeout time.Duration `yaml:"stream_timeout"`
	// IdleTimeout closes keep-alive connections idle for this long.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// MaxConnections caps the connections open at once; past it, new ones
	// wait in the kernel's accept backlog until one closes.
	MaxConnections int `yaml:"max_connections"`
	// SessionIdleTimeout closes legacy-era sessions idle for this long.
	SessionIdleTimeout time.Duration `yaml:"session_idle_timeout"`
	// TLS turns on TLS for the listener; nil means plaintext. A pointer so
	// that `tls: {}` is seen (and refused) rather than read as "no TLS".
	TLS *TLS `yaml:"tls"`
	// InsecurePlaintext allows a non-loopback address without TLS, for a
	// listener behind a TLS-terminating proxy. Loudly named on purpose, and
	// warned about at every start.
	InsecurePlaintext bool `yaml:"insecure_plaintext"`
}

// TLS configures TLS on the listener: a certificate and key read from disk
// (and re-read when they change), or a self-signed certificate made at start.
type TLS struct {
	// Cert and Key are PEM files; relative paths are relative to the config
	// file's directory.
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
	// ClientCA is a PEM file of CA certificates; when set, every client must
	// present a certificate signed by one of them (mTLS).
	ClientCA string `yaml:"client_ca"`
	// SelfSigned makes an in-memory certificate for local use; its
	// fingerprint is printed at start so a client can pin it.
	SelfSigned bool `yaml:"self_signed"`
}

// Auth configures how callers authenticate.
type Auth struct {
	APIKeys []APIKey `yaml:"api_keys"`
	// InsecureDisableAuth turns authentication off. It is accepted only on a
	// loopback listener, and it is logged as a warning at every start.
	InsecureDisableAuth bool `yaml:"insecure_disable_auth"`
	// JWT accepts OAuth 2.1 bearer JWTs (see jwt.go); nil means off.
	JWT *JWT `yaml:"jwt"`
	// Introspection accepts opaque OAuth tokens by RFC 7662 (see auth.go); nil means off.
	Introspection *Introspection `yaml:"introspection"`
	// MTLS maps verified client certificates to principals (see auth.go); nil means off.
	MTLS *MTLS `yaml:"mtls"`
	// RequiredScopes must all be granted to every OAuth token (see auth.go).
	RequiredScopes []string `yaml:"required_scopes"`
}

// APIKey is one accepted API key, stored only as the SHA-256 of the key.
type APIKey struct {
	ID     string   `yaml:"id"`
	SHA256 string   `yaml:"sha256"`
	Roles  []string `yaml:"roles"`
}

// Upstream is one MCP server mcpgate fronts: a stdio child (builtin or
// command) or a remote Streamable HTTP server (url). Exactly one of Builtin,
// Command, URL is set. See upstream.go for the types it uses and the rules
// it must follow.
type Upstream struct {
	// Builtin names mcpgate's own demo server (BuiltinDemo), run as a stdio
	// child: the mcpgate binary re-executed (or, with InsecureInProcess,
	// served inside the gateway).
	Builtin string `yaml:"builtin"`
	// Command is the argv of a stdio child. Command[0] is used as written: a
	// bare program name is looked up in PATH.
	Command []string `yaml:"command"`
	// Env is the child's whole environment: children start from an empty
	// one, so nothing of mcpgate's own environment leaks into them.
	Env map[string]Value `yaml:"env"`
	// Dir is the child's working directory; relative to the config file's
	// directory.
	Dir string `yaml:"dir"`
	// URL is a remote Streamable HTTP endpoint.
	URL string `yaml:"url"`
	// Auth holds the credentials the gateway presents to a url upstream
	// (never the caller's own).
	Auth *UpstreamAuth `yaml:"auth"`
	// TLS configures TLS towards a url upstream.
	TLS *UpstreamTLS `yaml:"tls"`
	// Namespace prefixes the upstream's names; nil means the upstream's own
	// config name, "" means no prefix.
	Namespace *string `yaml:"namespace"`
	// Start is StartBoot (the default: started with the gateway) or
	// StartOnDemand (started at first use).
	Start string `yaml:"start"`
	// Instances is InstancesShared (the default: one instance for every
	// caller) or InstancesPerPrincipal (one per authenticated principal;
	// stdio upstreams only).
	Instances string `yaml:"instances"`
	// MaxInstances caps the per-principal instances running at once.
	MaxInstances int `yaml:"max_instances"`
	// IdleTimeout stops a per-principal instance idle for this long.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// CallTimeout bounds every call to this upstream.
	CallTimeout time.Duration `yaml:"call_timeout"`
	// Limits caps this upstream's calls in flight; nil: only the gateway's
	// and the principals' caps apply.
	Limits *UpstreamLimits `yaml:"limits"`
	// ProtocolVersion pins the MCP revision mcpgate speaks to this upstream:
	// empty (auto) tries 2026-07-28's server/discover and falls back to a
	// 2025-11-25 initialize.
	ProtocolVersion string `yaml:"protocol_version"`
	// Tools tightens, per tool (by the upstream's own name), what mcpgate
	// accepts as its arguments: a JSON Schema checked on top of the tool's
	// own (both must pass), e.g. a pattern or maxLength the upstream lacks.
	Tools map[string]ToolSettings `yaml:"tools"`
	// MaxResultBytes caps one result of this upstream (its JSON size); a
	// larger one is refused. Zero means DefaultMaxResultBytes.
	MaxResultBytes int64 `yaml:"max_result_bytes"`
	// Redact lists regular expressions (RE2) whose matches in the text of
	// this upstream's tool results are replaced by [REDACTED] before the
	// client sees them; each redaction is logged, counted and audited.
	Redact []string `yaml:"redact"`
	// Sandbox configures the isolation of a stdio upstream: what it may
	// read and write, its network egress and its resource limits.
	Sandbox *Sandbox `yaml:"sandbox"`
	// InsecureNoSandbox runs a stdio upstream without isolation, as
	// mcpgate's own user: for hosts without the kernel features (the
	// gateway then refuses to start it otherwise). Warned at every start.
	InsecureNoSandbox bool `yaml:"insecure_no_sandbox"`
	// InsecureInProcess serves a builtin upstream inside the gateway's own
	// process (over an in-memory transport) instead of as a sandboxed
	// child: no sandbox and no process boundary between it and the
	// gateway's keys. For benchmarks that price the gateway's pipeline
	// alone, and for trying mcpgate where nothing can be sandboxed.
	// Warned at every start.
	InsecureInProcess bool `yaml:"insecure_in_process"`
	// InsecurePlaintext allows an http:// url to a non-loopback host.
	InsecurePlaintext bool `yaml:"insecure_plaintext"`
}

// Audit configures the tamper-evident audit log.
type Audit struct {
	// Path is the log file (JSON Lines). Empty turns auditing off, which is
	// warned about at every start and by `mcpgate check`.
	Path string `yaml:"path"`
	// SigningKey is the file holding the checkpoint signing key, as written
	// by `mcpgate audit keygen`. Required with Path.
	SigningKey string `yaml:"signing_key"`
	// CheckpointInterval is how often a signed checkpoint is written while
	// records arrive (one is always written at shutdown).
	CheckpointInterval time.Duration `yaml:"checkpoint_interval"`
	// Rotate and CheckpointCopy: see audit_rotate.go.
	Rotate         AuditRotate `yaml:"rotate"`
	CheckpointCopy string      `yaml:"checkpoint_copy"`
	// Arguments records calls' full arguments, redacted; see
	// audit_arguments.go.
	Arguments AuditArguments `yaml:"arguments"`
}

// Default values. They are exported so that docs and tests name one source.
const (
	DefaultAddress            = "127.0.0.1:8443"
	DefaultMaxBodyBytes       = 4 << 20
	DefaultMaxHeaderBytes     = 64 << 10
	DefaultMaxJSONDepth       = 64
	DefaultReadHeaderTimeout  = 10 * time.Second
	DefaultReadTimeout        = 30 * time.Second
	DefaultWriteTimeout       = 5 * time.Minute
	DefaultStreamTimeout      = time.Hour
	DefaultIdleTimeout        = 2 * time.Minute
	DefaultSessionIdleTimeout = 30 * time.Minute
	DefaultMaxConnections     = 1024
	maxMaxConnections         = 1 << 20
	DefaultCheckpointInterval = time.Minute
)

// ApplyDefaults fills every zero-valued setting with its default.
func (c *Config) ApplyDefaults() {
	l := &c.Listen
	setDefault(&l.Address, DefaultAddress)
	setDefault(&l.MaxBodyBytes, DefaultMaxBodyBytes)
	setDefault(&l.MaxHeaderBytes, DefaultMaxHeaderBytes)
	setDefault(&l.MaxJSONDepth, DefaultMaxJSONDepth)
	setDefault(&l.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	setDefault(&l.ReadTimeout, DefaultReadTimeout)
	setDefault(&l.WriteTimeout, DefaultWriteTimeout)
	setDefault(&l.StreamTimeout, DefaultStreamTimeout)
	setDefault(&l.IdleTimeout, DefaultIdleTimeout)
	setDefault(&l.SessionIdleTimeout, DefaultSessionIdleTimeout)
	setDefault(&l.MaxConnections, DefaultMaxConnections)
	setDefault(&c.Audit.CheckpointInterval, DefaultCheckpointInterval)
	c.Audit.Arguments.applyDefaults()
	c.Admin.applyDefaults()
	c.Limits.applyDefaults()
	c.Alerts.applyDefaults()
	c.Tracing.applyDefaults()
	c.Auth.JWT.applyDefaults()
	c.Auth.Introspection.applyDefaults()
	c.Policy.applyDefaults()
	for name, u := range c.Upstreams {
		u.applyDefaults()
		c.Upstreams[name] = u
	}
}

func setDefault[T comparable](field *T, value T) {
	var zero T
	if *field == zero {
		*field = value
	}
}

// IsLoopbackAddress reports whether a listen address (host:port) binds only
// loopback interfaces. "localhost" counts; an empty host (all interfaces) does not.
func IsLoopbackAddress(address string) bool {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return false
	}
	return IsLoopbackHost(host)
}

// IsLoopbackHost reports whether a host name or IP address (without port or
// brackets) names only loopback: "localhost", 127.0.0.0/8 or ::1.
func IsLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// UpstreamNamespace returns the prefix an upstream's names get.
func (u Upstream) UpstreamNamespace(name string) string {
	if u.Namespace == nil {
		return name
	}
	return *u.Namespace
}
