package upstream

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"log/slog"
	"mime"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpgate/mcpgate/internal/config"
	"github.com/mcpgate/mcpgate/internal/sandbox"
	"github.com/mcpgate/mcpgate/internal/secret"
)

// terminateAfter is how long a child has to exit after its stdin closes
// before it gets SIGTERM (and as long again before SIGKILL).
const terminateAfter = 2 * time.Second

// instanceDirVar names an instance's private state directory in its
// environment; instanceDirRef is how an env literal in config refers to it
// (MEMORY_FILE_PATH: "${MCPGATE_INSTANCE_DIR}/memory.jsonl").
const (
	instanceDirVar = "MCPGATE_INSTANCE_DIR"
	instanceDirRef = "${" + instanceDirVar + "}"
)

// sandboxUIDBase gives each stdio upstream its own range of 65536 host
// uids, derived from its name so that it stays the same across restarts and
// config edits (the files a server wrote stay its own). Ranges start at
// sandbox.DefaultUIDBase and stay below 2^31.
func sandboxUIDBase(name string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(name))
	return sandbox.DefaultUIDBase + (h.Sum32()%16000)<<16
}

// SpecsFromConfig turns the config's upstreams into Specs, resolving every
// secret reference now: a missing secret stops the start with an error that
// names the key, never the value. builtin is the argv that runs a built-in
// server ("demo") as a child: mcpgate's own binary, re-executed.
func SpecsFromConfig(cfg *config.Config, builtin func(name string) ([]string, error), logger *slog.Logger) ([]Spec, error) {
	names := make([]string, 0, len(cfg.Upstreams))
	for name := range cfg.Upstreams {
		names = append(names, name)
	}
	sort.Strings(names)
	var specs []Spec
	uidOwners := map[uint32]string{}
	for _, name := range names {
		u := cfg.Upstreams[name]
		spec := Spec{
			Name:           name,
			Namespace:      u.UpstreamNamespace(name),
			OnDemand:       u.Start == config.StartOnDemand,
			PerPrincipal:   u.Instances == config.InstancesPerPrincipal,
			MaxInstances:   u.MaxInstances,
			IdleTimeout:    u.IdleTimeout,
			CallTimeout:    u.CallTimeout,
			Protocol:       u.ProtocolVersion,
			MaxResultBytes: u.MaxResultBytes,
		}
		for _, r := range u.Redact {
			re, err := regexp.Compile(r)
			if err != nil {
				return nil, fmt.Errorf("upstreams.%s.redact: %w", name, err)
			}
			spec.Redact = append(spec.Redact, re)
		}
		for tool, settings := range u.Tools {
			if settings.CallTimeout > 0 {
				if spec.ToolCallTimeout == nil {
					spec.ToolCallTimeout = map[string]time.Duration{}
				}
				spec.ToolCallTimeout[tool] = settings.CallTimeout
			}
			if settings.Arguments == nil {
				continue
			}
			raw, err := json.Marshal(settings.Arguments)
			if err == nil {
				// Compiled alone now, so that a broken one stops the start
				// rather than quarantining the tool later.
				_, err = compileSchema(json.RawMessage(raw))
			}
			if err != nil {
				return nil, fmt.Errorf("upstreams.%s.tools.%s.arguments: %w", name, tool, err)
			}
			if spec.Tighten == nil {
				spec.Tighten = map[string]json.RawMessage{}
			}
			spec.Tighten[tool] = raw
		}
		var err error
		switch {
		case u.IsRemote():
			spec.Dial, err = remoteDialer(name, u)
		case u.IsInProcess():
			spec.Dial = inProcessDialer(logger.With("upstream", name))
		default:
			spec.StateDirs = true
			base := sandboxUIDBase(name)
			if other, ok := uidOwners[base]; ok {
				return nil, fmt.Errorf("upstreams.%s: its sandbox uid range is that of upstream %s; rename one", name, other)
			}
			uidOwners[base] = name
			spec.Dial, err = stdioDialer(name, u, base, builtin, logger.With("upstream", name))
		}
		if err != nil {
			return nil, err
		}
		specs = append(specs, spec)
	}
	return specs, nil
}

// sandboxSpec is the sandbox of stdio upstream name, without what differs
// per instance (the environment, the state directory).
func sandboxSpec(name string, u config.Upstream, uidBase uint32, builtin func(string) ([]string, error), logger *slog.Logger) (sandbox.Spec, error) {
	argv := u.Command
	if u.Builtin != "" {
		var err error
		if argv, err = builtin(u.Builtin); err != nil {
			return sandbox.Spec{}, fmt.Errorf("upstreams.%s.builtin: %w", name, err)
		}
	}
	spec := sandbox.Spec{
		Name:    name,
		Argv:    argv,
		Dir:     u.Dir,
		UIDBase: uidBase,
		Logger:  logger,
		Limits: sandbox.Limits{
			MemoryBytes: u.Sandbox.MemoryBytes(),
			Pids:        u.Sandbox.PidsLimit(),
		},
	}
	if u.InsecureNoSandbox {
		spec.Isolation = sandbox.IsolationNone
	} else {
		accept := sandbox.IsolationFull
		if u.Sandbox != nil && u.Sandbox.InsecureIsolation != "" {
			accept = sandbox.Isolation(u.Sandbox.InsecureIsolation)
		}
		level, err := sandbox.Choose(accept)
		if err != nil {
			hint := "sandbox.insecure_isolation: no-userns (root) or landlock-only would accept weaker isolation; insecure_no_sandbox: true none (not recommended)"
			return sandbox.Spec{}, fmt.Errorf("upstreams.%s: %w; %s", name, err, hint)
		}
		spec.Isolation = level
	}
	if sb := u.Sandbox; sb != nil {
		spec.Read, spec.Write, spec.Allow = sb.Read, sb.Write, sb.Network.Allow
		spec.Limits.CPU, spec.Limits.NoFile = sb.CPU, sb.NoFile
	}
	if err := sandbox.Check(spec); err != nil {
		return sandbox.Spec{}, fmt.Errorf("upstreams.%s.sandbox: %w", name, err)
	}
	return spec, nil
}

// SandboxSummary describes how stdio upstream name would be isolated on
// this host, or why it could not start (for `mcpgate check`). builtin is as
// for SpecsFromConfig.
func SandboxSummary(name string, u config.Upstream, builtin func(string) ([]string, error)) (string, error) {
	spec, err := sandboxSpec(name, u, sandboxUIDBase(name), builtin, nil)
	if err != nil {
		return "", err
	}
	level := "full isolation (namespaces, read-only root"
	switch spec.Isolation {
	case sandbox.IsolationNone:
		return "not isolated (insecure_no_sandbox)", nil
	case sandbox.IsolationNoUserNS:
		level = "WEAKER isolation no-userns (namespaces but no user namespace, read-only root"
	case sandbox.IsolationLandlockOnly:
		level = "WEAKER isolation landlock-only (no namespaces: the host's processes and UDP are reachable"
	}
	caps := sandbox.Probe()
	limit := func(n int64, unit string) string {
		switch {
		case n < 0:
			return "unlimited"
		case unit == "MiB":
			return fmt.Sprintf("%dMiB", n>>20)
		}
		return fmt.Sprint(n)
	}
	who := "the gateway's own uid (unprivileged: no dedicated uid range)"
	if caps.Root {
		who = fmt.Sprintf("host uid %d (write grants must be writable by it)", spec.HostUID())
	}
	network := "none"
	if len(spec.Allow) > 0 {
		network = "through the egress proxy to " + strings.Join(spec.Allow, ", ")
	}
	return fmt.Sprintf("%s, Landlock ABI %d, seccomp, cgroups %s); runs as %s; memory %s, pids %s; network %s; read %v; write %v",
		level, caps.Landlock, caps.Cgroups, who, limit(spec.Limits.MemoryBytes, "MiB"), limit(spec.Limits.Pids, ""), network, spec.Read, spec.Write), nil
}

func stdioDialer(name string, u config.Upstream, uidBase uint32, builtin func(string) ([]string, error), logger *slog.Logger) (func(context.Context, Instance) (mcp.Transport, error), error) {
	base, err := sandboxSpec(name, u, uidBase, builtin, logger)
	if err != nil {
		return nil, err
	}
	if base.Isolation != sandbox.IsolationFull && base.Isolation != sandbox.IsolationNone {
		logger.Warn("UPSTREAM WEAKLY ISOLATED: this host cannot isolate it fully", "isolation", base.Isolation,
			"key", "upstreams."+name+".sandbox.insecure_isolation")
	}
	type envVar struct {
		name, value string
		literal     bool // may name ${MCPGATE_INSTANCE_DIR}; a secret is never expanded
	}
	env := make([]envVar, 0, len(u.Env))
	keys := make([]string, 0, len(u.Env))
	for k := range u.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v, err := u.Env[k].Resolve()
		if err != nil {
			return nil, fmt.Errorf("upstreams.%s.env.%s: %w", name, k, err)
		}
		env = append(env, envVar{k, v.Reveal(), !u.Env[k].IsSecret()})
	}
	return func(_ context.Context, inst Instance) (mcp.Transport, error) {
		spec := base
		spec.State = inst.Dir
		for _, v := range env {
			value := v.value
			if v.literal {
				value = strings.ReplaceAll(value, instanceDirRef, inst.Dir)
			}
			spec.Env = append(spec.Env, v.name+"="+value)
		}
		if inst.Dir != "" {
			spec.Env = append(spec.Env, instanceDirVar+"="+inst.Dir)
		}
		child, err := sandbox.Command(spec)
		if err != nil {
			return nil, fmt.Errorf("start upstream %s: %w", name, err)
		}
		child.Cmd.Stderr = &stderrLog{logger: logger}
		return &childTransport{
			CommandTransport: mcp.CommandTransport{Command: child.Cmd, TerminateDuration: terminateAfter},
			child:            child,
			inst:             inst,
			logger:           logger,
		}, nil
	}, nil
}

// childTransport is the SDK's command transport plus the sandbox's start
// and finish, and two guarantees: what is left of the child's process group
// is killed once the child has exited (no orphans), and responses the
// gateway did not ask for are dropped and logged.
type childTransport struct {
	mcp.CommandTransport
	child  *sandbox.Child
	inst   Instance
	logger *slog.Logger
}

func (t *childTransport) Connect(ctx context.Context) (mcp.Connection, error) {
	var conn mcp.Connection
	err := t.child.Launch(func() (err error) {
		conn, err = t.CommandTransport.Connect(ctx)
		return err
	})
	if err != nil {
		if conn != nil {
			conn.Close()
		}
		t.child.Finish()
		return nil, fmt.Errorf("start child: %w", err)
	}
	closer := &childCloser{Connection: newIDGuard(conn, t.inst.gate, t.logger), child: t.child, limitKill: t.inst.limitKill}
	if err := t.child.Started(ctx); err != nil {
		closer.Close()
		return nil, fmt.Errorf("start child: %w", err)
	}
	return closer, nil
}

// stderrLog logs a child's stderr line by line, each line capped.
type stderrLog struct {
	logger *slog.Logger
	buf    []byte
}

// maxStderrLine caps one logged line of a child's stderr.
const maxStderrLine = 4096

func (w *stderrLog) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := -1
		for j, b := range w.buf {
			if b == '\n' {
				i = j
				break
			}
		}
		if i < 0 {
			if len(w.buf) > maxStderrLine {
				w.emit(w.buf[:maxStderrLine])
				w.buf = w.buf[:0]
			}
			return len(p), nil
		}
		w.emit(w.buf[:i])
		w.buf = w.buf[i+1:]
	}
}

func (w *stderrLog) emit(line []byte) {
	if len(line) > maxStderrLine {
		line = line[:maxStderrLine]
	}
	w.logger.Info("upstream stderr", "line", string(line))
}

// remoteDialer connects to a remote Streamable HTTP upstream with the
// credentials the gateway holds for it, and nothing of the client's.
func remoteDialer(name string, u config.Upstream) (func(context.Context, Instance) (mcp.Transport, error), error) {
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12}
	if t := u.TLS; t != nil {
		if t.CA != "" {
			pem, err := os.ReadFile(t.CA)
			if err != nil {
				return nil, fmt.Errorf("upstreams.%s.tls.ca: %w", name, err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("upstreams.%s.tls.ca: no PEM certificate in %s", name, t.CA)
			}
			tlsConfig.RootCAs = pool
		}
		if t.ClientCert != "" {
			cert, err := tls.LoadX509KeyPair(t.ClientCert, t.ClientKey)
			if err != nil {
				return nil, fmt.Errorf("upstreams.%s.tls.client_cert: %w", name, err)
			}
			tlsConfig.Certificates = []tls.Certificate{cert}
		}
	}
	var bearer secret.Secret
	if u.Auth != nil && u.Auth.Bearer != nil {
		var err error
		if bearer, err = u.Auth.Bearer.Resolve(); err != nil {
			return nil, fmt.Errorf("upstreams.%s.auth.bearer: %w", name, err)
		}
	}
	base := &http.Transport{
		Proxy:               nil, // an upstream is reached directly, never via an environment proxy
		TLSClientConfig:     tlsConfig,
		ForceAttemptHTTP2:   true,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 10 * time.Second,
	}
	return func(_ context.Context, inst Instance) (mcp.Transport, error) {
		client := &http.Client{
			Transport: &credentials{base: traceParent{base}, bearer: bearer, gate: inst.gate},
			// A redirect could carry the bearer elsewhere: none is followed.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
		return &mcp.StreamableClientTransport{Endpoint: u.URL, HTTPClient: client, MaxRetries: -1}, nil
	}, nil
}

// credentials adds the gateway's own bearer token to every request to one
// upstream, and puts the connection's relay gate on its event streams.
type credentials struct {
	base   http.RoundTripper
	bearer secret.Secret
	gate   *relayGate
}

func (c *credentials) RoundTrip(r *http.Request) (*http.Response, error) {
	if !c.bearer.IsZero() {
		r = r.Clone(r.Context())
		r.Header.Set("Authorization", "Bearer "+c.bearer.Reveal())
	}
	resp, err := c.base.RoundTrip(r)
	if err != nil || c.gate == nil {
		return resp, err
	}
	if ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); ct == "text/event-stream" {
		resp.Body = &sseGate{body: resp.Body, gate: c.gate}
	}
	return resp, nil
}
