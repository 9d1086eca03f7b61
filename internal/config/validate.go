package config

import (
	"encoding/hex"
	"fmt"
	"maps"
	"net"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// idPattern is what an API key id, upstream name or role may look like: ids
// end up in logs, audit records and tool names, so they stay plain.
var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$`)

// namespacePattern is what a tool-name prefix may look like; MCP tool names
// are [A-Za-z0-9_.-], and the "." separator is added by mcpgate.
var namespacePattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)

// ValidID reports whether s may be an API key id, upstream name or role.
func ValidID(s string) bool { return idPattern.MatchString(s) }

// Validate returns every problem with c; c should have defaults applied.
func (c *Config) Validate() Problems {
	var ps Problems
	add := func(key, format string, args ...any) {
		ps = append(ps, Problem{Key: key, Message: fmt.Sprintf(format, args...)})
	}
	c.validateListen(add)
	c.validateAuth(add)
	c.validateJWT(add)
	c.validateAuthMethods(add)
	c.validateUpstreams(add)
	c.validateAudit(add)
	c.validateAdmin(add)
	c.validateLimits(add)
	c.validateRunAs(add)
	c.validateAlerts(add)
	c.validateTracing(add)
	c.ToolIntegrity.validate(add)
	c.Policy.validate(add)
	return ps
}

type addFunc func(key, format string, args ...any)

func (c *Config) validateListen(add addFunc) {
	l := c.Listen
	host, port, err := net.SplitHostPort(l.Address)
	if err != nil {
		add("listen.address", "must be host:port: %v", err)
	} else if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		add("listen.address", "port %q is not a number from 0 to 65535", port)
	} else if host == "" {
		add("listen.address", "an empty host binds every interface; name the address to bind")
	}
	loopback := IsLoopbackAddress(l.Address)
	if !loopback && len(l.AllowedHosts) == 0 {
		add("listen.allowed_hosts", "required on a non-loopback address: list the host names clients use (DNS-rebinding protection)")
	}
	for i, h := range l.AllowedHosts {
		if h == "" || strings.ContainsAny(h, "/ *") {
			add(fmt.Sprintf("listen.allowed_hosts[%d]", i), "%q is not a host or host:port (wildcards are not allowed)", h)
		}
	}
	for i, o := range l.AllowedOrigins {
		if err := checkOrigin(o); err != nil {
			add(fmt.Sprintf("listen.allowed_origins[%d]", i), "%v", err)
		}
	}
	positive := []struct {
		key string
		ok  bool
	}{
		{"listen.max_body_bytes", l.MaxBodyBytes > 0},
		{"listen.max_header_bytes", l.MaxHeaderBytes > 0},
		{"listen.max_json_depth", l.MaxJSONDepth > 0},
		{"listen.read_header_timeout", l.ReadHeaderTimeout > 0},
		{"listen.read_timeout", l.ReadTimeout > 0},
		{"listen.write_timeout", l.WriteTimeout > 0},
		{"listen.stream_timeout", l.StreamTimeout > 0},
		{"listen.idle_timeout", l.IdleTimeout > 0},
		{"listen.session_idle_timeout", l.SessionIdleTimeout > 0},
		{"listen.max_connections", l.MaxConnections > 0},
	}
	for _, p := range positive {
		if !p.ok {
			add(p.key, "must be positive")
		}
	}
	if l.MaxJSONDepth > 1000 {
		add("listen.max_json_depth", "must be at most 1000")
	}
	if l.MaxConnections > maxMaxConnections {
		add("listen.max_connections", "must be at most %d", maxMaxConnections)
	}
	switch {
	case l.TLS != nil && l.InsecurePlaintext:
		add("listen.insecure_plaintext", "is set together with listen.tls; remove one")
	case l.TLS == nil && !l.InsecurePlaintext && !loopback:
		add("listen.tls", "required on a non-loopback address: configure listen.tls (cert and key), "+
			"or set listen.insecure_plaintext: true if a TLS-terminating proxy is in front")
	}
	if l.TLS != nil {
		validateTLS(*l.TLS, add)
	}
}

// validateTLS checks the shape of listen.tls and that the files it names can
// be opened, so `mcpgate check` catches a wrong path; their contents are
// parsed when the gateway is built.
func validateTLS(t TLS, add addFunc) {
	files := t.Cert != "" || t.Key != ""
	switch {
	case t.SelfSigned && files:
		add("listen.tls.self_signed", "is set together with listen.tls.cert/key; remove one")
	case !t.SelfSigned && !files:
		add("listen.tls", "set cert and key, or self_signed: true")
	case files && t.Cert == "":
		add("listen.tls.cert", "required together with listen.tls.key")
	case files && t.Key == "":
		add("listen.tls.key", "required together with listen.tls.cert")
	}
	for _, f := range []struct{ key, path string }{
		{"listen.tls.cert", t.Cert}, {"listen.tls.key", t.Key}, {"listen.tls.client_ca", t.ClientCA},
	} {
		if f.path == "" {
			continue
		}
		if err := checkReadable(f.path); err != nil {
			add(f.key, "%v", err)
		}
	}
}

// checkReadable reports whether path is a regular file this process can open.
func checkReadable(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("cannot read: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("cannot read: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", path)
	}
	return nil
}

// checkOrigin accepts exactly what browsers send: scheme://host[:port].
func checkOrigin(o string) error {
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil || o != strings.ToLower(o) {
		return fmt.Errorf("%q is not an origin: write scheme://host[:port] in lower case, no path or wildcard", o)
	}
	return nil
}

func (c *Config) validateAuth(add addFunc) {
	a := c.Auth
	if a.InsecureDisableAuth {
		if !IsLoopbackAddress(c.Listen.Address) {
			add("auth.insecure_disable_auth", "authentication may be disabled only on a loopback listen.address")
		}
		if len(a.APIKeys) > 0 {
			add("auth.insecure_disable_auth", "is set together with auth.api_keys; remove one")
		}
	} else if len(a.APIKeys) == 0 && a.JWT == nil && a.Introspection == nil && a.MTLS == nil {
		add("auth", "no way to authenticate: add auth.api_keys (see `mcpgate keys new`), auth.jwt, auth.introspection or auth.mtls")
	}
	ids := map[string]bool{}
	hashes := map[string]string{}
	for i, k := range a.APIKeys {
		key := fmt.Sprintf("auth.api_keys[%d]", i)
		if !idPattern.MatchString(k.ID) {
			add(key+".id", "%q must be 1-64 characters of letters, digits and _.@- ", k.ID)
		} else if ids[k.ID] {
			add(key+".id", "duplicate id %q", k.ID)
		}
		ids[k.ID] = true
		if b, err := hex.DecodeString(k.SHA256); err != nil || len(b) != 32 || k.SHA256 != strings.ToLower(k.SHA256) {
			add(key+".sha256", "must be 64 lower-case hex digits, the SHA-256 of the key (see `mcpgate keys new`); never the key itself")
		} else if other, ok := hashes[k.SHA256]; ok {
			add(key+".sha256", "the same key is also configured for %q", other)
		} else {
			hashes[k.SHA256] = k.ID
		}
		for j, r := range k.Roles {
			if !idPattern.MatchString(r) {
				add(fmt.Sprintf("%s.roles[%d]", key, j), "%q is not a valid role name", r)
			}
		}
	}
}

func (c *Config) validateUpstreams(add addFunc) {
	if len(c.Upstreams) == 0 {
		add("upstreams", "no upstream configured: mcpgate would have nothing to serve")
		return
	}
	names := slices.Sorted(maps.Keys(c.Upstreams))
	for _, name := range names {
		c.Upstreams[name].validate(name, "upstreams."+name, add)
	}
	c.validateNamespaces(names, add)
}

func (c *Config) validateAudit(add addFunc) {
	a := c.Audit
	switch {
	case a.Path == "" && a.SigningKey != "":
		add("audit.path", "required with audit.signing_key")
	case a.Path != "" && a.SigningKey == "":
		add("audit.signing_key", "required with audit.path: checkpoints must be signed (see `mcpgate audit keygen`)")
	}
	if a.CheckpointInterval <= 0 {
		add("audit.checkpoint_interval", "must be positive")
	}
	c.validateAuditExtras(add)
	a.Arguments.validate(add)
}
