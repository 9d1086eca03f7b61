// Package gateway is mcpgate's composition root: it builds every stage from
// the config, wires them in order (transport, authn, strict JSON, protocol
// front, upstream) and owns their lifetimes.
package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"golang.org/x/mod/sumdb/note"

	"github.com/mcpgate/mcpgate/internal/alert"
	"github.com/mcpgate/mcpgate/internal/audit"
	"github.com/mcpgate/mcpgate/internal/authn"
	"github.com/mcpgate/mcpgate/internal/config"
	"github.com/mcpgate/mcpgate/internal/policy"
	"github.com/mcpgate/mcpgate/internal/strictjson"
	"github.com/mcpgate/mcpgate/internal/telemetry"
	"github.com/mcpgate/mcpgate/internal/transport"
	"github.com/mcpgate/mcpgate/internal/upstream"
)

// EndpointPath is where the MCP endpoint is served.
const EndpointPath = "/mcp"

// shutdownGrace bounds how long calls in flight may take to finish at stop.
const shutdownGrace = 10 * time.Second

// Gateway is one configured, runnable mcpgate.
type Gateway struct {
	cfg     *config.Config
	logger  *slog.Logger
	catalog *upstream.Catalog
	// integrity is the tool lockfile; nil when tool_integrity is off.
	integrity *integrity
	authz     *authorizer
	cfgPath   string // the config file, re-read for policy reloads; "" for the embedded default
	started   bool   // Start has run
	handler   http.Handler
	tls       *transport.ServerTLS // nil: plaintext
	audit     *audit.Log           // nil: auditing off
	front     *front
	metrics   *telemetry.Metrics
	adminLn   net.Listener // nil: admin listener disabled or not bound
	serving   atomic.Bool  // the MCP listener is serving (readiness)
	// connections counts the MCP listener's open connections.
	connections atomic.Int64
	alerts      *alert.Alerter // nil: no alert rules
}

// New builds a gateway from a validated config.
func New(cfg *config.Config, logger *slog.Logger, opts ...Option) (*Gateway, error) {
	o := buildOptions(opts)
	authenticator, err := newAuthenticator(cfg.Auth, logger)
	if err != nil {
		return nil, err
	}
	// What can fail on config content (secrets, the policy) is done before
	// anything that holds resources (the audit log) is opened.
	specs, err := upstream.SpecsFromConfig(cfg, BuiltinCommand, logger)
	if err != nil {
		return nil, err
	}
	pol, err := policy.Compile(cfg.Policy)
	if err != nil {
		return nil, fmt.Errorf("load policy: %w", err)
	}
	arguments, err := argumentRedactor(cfg.Audit.Arguments)
	if err != nil {
		return nil, err
	}
	g := &Gateway{cfg: cfg, logger: logger, metrics: telemetry.New(Version())}
	alerting, err := alertOptions(cfg.Alerts, g.metrics, logger)
	if err != nil {
		return nil, err
	}
	if g.integrity, err = newIntegrity(cfg.ToolIntegrity, logger.With("component", "integrity"), g.metrics); err != nil {
		return nil, err
	}
	if cfg.Listen.TLS != nil {
		if g.tls, err = transport.NewServerTLS(*cfg.Listen.TLS, cfg.Listen.AllowedHosts, logger.With("component", "tls")); err != nil {
			return nil, fmt.Errorf("configure TLS: %w", err)
		}
	}
	if cfg.Audit.Path != "" {
		if g.audit, err = openAudit(cfg.Audit, logger, g.metrics); err != nil {
			return nil, err
		}
	}
	sdkLogger := newSDKLogger(logger)
	catalogOpts := upstream.Options{
		Version: Version(),
		Owner:   requestOwner,
		// g.authz is made after the catalog and before any request.
		MayRead:   func(by *auth.TokenInfo, uri string) bool { return g.authz.mayRead(by, uri) },
		Logger:    logger,
		SDKLogger: sdkLogger,
		Metrics:   g.metrics,
		Calls:     telemetry.NewCallObserver(g.metrics, o.tracer()),
		// A call awaiting a modern client's input is a call in flight that
		// holds no request: the same caps bound it.
		MaxPendingCalls:             cfg.Limits.ConcurrentTotal,
		MaxPendingCallsPerPrincipal: cfg.Limits.PerPrincipal.Concurrent,
	}
	catalogOpts.Redacted = g.redacted
	if g.integrity != nil {
		catalogOpts.Integrity = g.integrity // a nil *integrity must not become a non-nil interface
		if g.audit != nil {
			g.integrity.audit = g.audit
		}
	} else if cfg.ToolIntegrity.Lockfile != "" {
		logger.Warn("TOOL DEFINITIONS NOT PINNED: a changed tool description or schema reaches clients; run mcpgate pin",
			"key", "tool_integrity", "lockfile", cfg.ToolIntegrity.Lockfile)
	}
	g.catalog = upstream.NewCatalog(specs, catalogOpts)
	if len(cfg.Policy.Rules) == 0 {
		logger.Warn("POLICY HAS NO RULES: every call is denied", "key", "policy.rules")
	}
	g.authz = newAuthorizer(pol, g.catalog, cfg.Auth.InsecureDisableAuth, logger.With("component", "policy"), g.metrics)
	if cfg.Source != config.Default().Source {
		g.cfgPath = cfg.Source
	}
	server := g.catalog.Server()
	server.AddReceivingMiddleware(g.authz.middleware)
	getServer := func(*http.Request) *mcp.Server { return server }
	// Host and Origin are checked by our own guard in front, against the
	// configured allowlist; the SDK's loopback-only check would refuse a
	// configured name behind a proxy, so it is turned off here.
	legacy := mcp.NewStreamableHTTPHandler(getServer, &mcp.StreamableHTTPOptions{
		SessionTimeout:             cfg.Listen.SessionIdleTimeout,
		DisableLocalhostProtection: true,
		MaxRequestBodyBytes:        cfg.Listen.MaxBodyBytes,
		Logger:                     sdkLogger,
	})
	modernOptions := func(jsonResponse bool) *mcp.StreamableHTTPOptions {
		return &mcp.StreamableHTTPOptions{
			Stateless:                    true,
			JSONResponse:                 jsonResponse,
			PropagateRequestCancellation: true,
			DisableLocalhostProtection:   true,
			MaxRequestBodyBytes:          cfg.Listen.MaxBodyBytes,
			Logger:                       sdkLogger,
		}
	}
	modern := mcp.NewStreamableHTTPHandler(getServer, modernOptions(false))
	modernJSON := mcp.NewStreamableHTTPHandler(getServer, modernOptions(true))
	jsonLimits := strictjson.DefaultLimits()
	jsonLimits.MaxBytes = int(cfg.Listen.MaxBodyBytes)
	jsonLimits.MaxDepth = cfg.Listen.MaxJSONDepth
	lim := cfg.Limits
	f := &front{
		auth:          authenticator,
		legacy:        bindSessions(legacy, cfg.Auth.InsecureDisableAuth),
		modern:        bindSessions(modern, cfg.Auth.InsecureDisableAuth),
		modernJSON:    bindSessions(modernJSON, cfg.Auth.InsecureDisableAuth),
		limits:        jsonLimits,
		maxBody:       cfg.Listen.MaxBodyBytes,
		readTimeout:   cfg.Listen.ReadTimeout,
		writeTimeout:  cfg.Listen.WriteTimeout,
		streamTimeout: cfg.Listen.StreamTimeout,
		challenge:     challenge(cfg.Auth),
		logger:        logger,
		metrics:       g.metrics,
		limiter:       newCallLimiter(cfg, g.catalog.UpstreamOf),
		tracer:        o.tracer(),
		sessions:      newSessionTable(lim.Sessions.Total, lim.Sessions.PerPrincipal, sdkSessions{server}, nil),
		arguments:     arguments,
		refusals:      newRefusalRecords(nil),
	}
	if g.audit != nil {
		f.audit = g.audit // a nil *audit.Log must not become a non-nil Auditor
		g.authz.audit = g.audit
		f.calls = g.authz.calls
	}
	mux := http.NewServeMux()
	g.front = f
	mux.Handle(EndpointPath, f)
	handlePRM(mux, cfg.Auth)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		transport.Reject(w, http.StatusNotFound, transport.CodeInvalidRequest, "not found: the MCP endpoint is "+EndpointPath)
	})
	// With TLS on, a page's own origin is https://, so that is what the
	// guard accepts as same-origin.
	g.handler = f.guarded(transport.NewHostGuard(cfg.Listen, g.tls != nil), mux)
	if err := g.metrics.TrackSessions(telemetry.EraLegacy, legacySessions(server)); err != nil {
		return nil, err
	}
	if err := f.limiter.track(g.metrics); err != nil {
		return nil, err
	}
	if err := g.metrics.TrackUpstreams(slices.Sorted(maps.Keys(cfg.Upstreams)), g.catalog.Up); err != nil {
		return nil, err
	}
	if err := g.metrics.TrackConnections(func() int { return int(g.connections.Load()) }); err != nil {
		return nil, err
	}
	g.startAlerts(alerting) // last: nothing after it fails
	return g, nil
}

// openAudit opens the audit log with the configured signing key. The key
// file must be readable by its owner only: whoever reads it can forge
// checkpoints.
func openAudit(a config.Audit, logger *slog.Logger, metrics *telemetry.Metrics) (*audit.Log, error) {
	info, err := os.Stat(a.SigningKey)
	if err != nil {
		return nil, fmt.Errorf("read audit.signing_key: %w", err)
	}
	if info.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("read audit.signing_key: %s is readable by group or others (mode %v); chmod 600 it", a.SigningKey, info.Mode().Perm())
	}
	b, err := os.ReadFile(a.SigningKey)
	if err != nil {
		return nil, fmt.Errorf("read audit.signing_key: %w", err)
	}
	signer, err := note.NewSigner(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, fmt.Errorf("read audit.signing_key %s: not a signing key made by `mcpgate audit keygen`", a.SigningKey)
	}
	l, err := audit.Open(a.Path, signer, audit.Options{
		CheckpointInterval: a.CheckpointInterval,
		RotateBytes:        a.Rotate.Bytes(),
		RotateAge:          a.Rotate.MaxAge,
		CheckpointCopy:     a.CheckpointCopy,
		// Result records lost after Submit returned count as failures.
		OnLost: func(n int, err error) {
			for range n {
				metrics.AuditAppend(0, err)
			}
		},
		Logger: logger.With("component", "audit"),
	})
	if err != nil {
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	return l, nil
}

// BuiltinCommand is the argv that runs a built-in upstream as a child: this
// very binary, re-executed with the built-in's subcommand ("mcpgate demo").
func BuiltinCommand(name string) ([]string, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own executable: %w", err)
	}
	return []string{self, name}, nil
}

// requestOwner is the principal an MCP request comes from, as the front
// established it (see bindSessions): "" when authentication is off.
func requestOwner(req mcp.Request) string {
	if extra := req.GetExtra(); extra != nil && extra.TokenInfo != nil {
		return extra.TokenInfo.UserID
	}
	return ""
}

// Start starts the upstreams and waits (bounded) for those that start at
// boot. Serve calls it; call it yourself only to use Handler without Serve.
func (g *Gateway) Start(ctx context.Context) error {
	if g.started {
		return nil
	}
	g.started = true
	for name, u := range g.cfg.Upstreams {
		if u.InsecureNoSandbox {
			g.logger.Warn("UPSTREAM RUNS UNSANDBOXED: it has the gateway's user, files and network", "upstream", name,
				"key", "upstreams."+name+".insecure_no_sandbox")
		}
		if u.IsInProcess() {
			g.logger.Warn("UPSTREAM RUNS INSIDE THE GATEWAY: no sandbox and no process boundary between it and the gateway's memory, keys and network",
				"upstream", name, "key", "upstreams."+name+".insecure_in_process")
		}
	}
	return g.catalog.Start(ctx)
}

// Close releases what New and Start opened: the upstreams (children are
// stopped) and the audit log, after a final signed checkpoint. Serve calls
// it; call it only for a gateway never served.
func (g *Gateway) Close() error {
	if g.front != nil {
		g.front.summarizeRefusals(context.Background(), true) // before the audit log closes
	}
	g.catalog.Close()
	closeLegacySessions(g.catalog.Server())
	g.alerts.Close()
	if g.adminLn != nil {
		g.adminLn.Close() // already closed if served
	}
	if g.audit == nil {
		return nil
	}
	if err := g.audit.Close(); err != nil {
		return fmt.Errorf("close audit log: %w", err)
	}
	return nil
}

func newAuthenticator(a config.Auth, logger *slog.Logger) (Authenticator, error) {
	if a.InsecureDisableAuth {
		return authn.Anonymous{}, nil
	}
	ids := make([]string, len(a.APIKeys))
	digests := make([]string, len(a.APIKeys))
	roles := make([][]string, len(a.APIKeys))
	for i, k := range a.APIKeys {
		ids[i], digests[i], roles[i] = k.ID, k.SHA256, k.Roles
	}
	keys, err := authn.NewAPIKeys(ids, digests, roles)
	if err != nil || (a.JWT == nil && a.Introspection == nil && a.MTLS == nil) {
		return keys, err
	}
	return newBearer(keys, a, logger)
}

// bindSessions hands the authenticated principal to the SDK, which binds a
// legacy session to the principal that created it and refuses (403) any
// other principal presenting its id. The principal was established by the
// front; this only translates it, so it never refuses anyone itself.
func bindSessions(h http.Handler, authDisabled bool) http.Handler {
	if authDisabled {
		return h // one anonymous principal: nothing to bind to
	}
	verify := func(ctx context.Context, _ string, _ *http.Request) (*auth.TokenInfo, error) {
		p := authn.PrincipalFrom(ctx)
		if p == nil {
			return nil, auth.ErrInvalidToken
		}
		return &auth.TokenInfo{UserID: p.SessionOwner(), Extra: map[string]any{principalKey: p}}, nil
	}
	bound := auth.RequireBearerToken(verify, &auth.RequireBearerTokenOptions{AllowMissingExpiration: true})(h)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The SDK hands its session binding only a request with a bearer
		// header; a principal of a client certificate has none. The value is
		// a placeholder the verify above never reads (it takes the
		// principal from the context), and nothing forwards it.
		if r.Header.Get("Authorization") == "" && authn.PrincipalFrom(r.Context()) != nil {
			r = r.Clone(r.Context())
			r.Header.Set("Authorization", "Bearer mcpgate-principal")
		}
		bound.ServeHTTP(w, r)
	})
}

// principalKey holds the request's *authn.Principal in the SDK's
// auth.TokenInfo.Extra, for the policy.
const principalKey = "mcpgate.principal"

// Handler is the gateway's whole HTTP surface, for tests and embedding.
func (g *Gateway) Handler() http.Handler { return g.handler }

// TLSFingerprint is the SHA-256 fingerprint of the self-signed certificate,
// for the operator to pin; empty unless listen.tls.self_signed is set.
func (g *Gateway) TLSFingerprint() string {
	if g.tls == nil {
		return ""
	}
	return g.tls.Fingerprint
}

// EndpointURL is the MCP endpoint's URL on ln: https:// when TLS is on.
func (g *Gateway) EndpointURL(ln net.Listener) string {
	scheme := "http://"
	if g.tls != nil {
		scheme = "https://"
	}
	return scheme + ln.Addr().String() + EndpointPath
}

// Listen binds the configured address and the admin listener.
func (g *Gateway) Listen() (net.Listener, error) {
	ls, err := Bind(g.cfg)
	if err != nil {
		return nil, err
	}
	g.adminLn = ls.Admin
	return ls.MCP, nil
}

// Listeners are the gateway's sockets, bound by Bind before the gateway is
// built so that a root process can bind low ports and then drop its
// privileges (run_as) before it opens anything else.
type Listeners struct {
	MCP   net.Listener
	Admin net.Listener // nil when the admin listener is disabled
}

// Bind binds the MCP listener and, unless disabled, the admin listener.
func Bind(cfg *config.Config) (*Listeners, error) {
	ln, err := net.Listen("tcp", cfg.Listen.Address)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", cfg.Listen.Address, err)
	}
	ls := &Listeners{MCP: ln}
	if cfg.Admin.Disabled {
		return ls, nil
	}
	if ls.Admin, err = net.Listen("tcp", cfg.Admin.Address); err != nil {
		ln.Close()
		return nil, fmt.Errorf("admin listener on %s: %w", cfg.Admin.Address, err)
	}
	return ls, nil
}

// Close closes both listeners (for a start abandoned before Serve).
func (ls *Listeners) Close() {
	ls.MCP.Close()
	if ls.Admin != nil {
		ls.Admin.Close()
	}
}

// ServeListeners is Serve on listeners bound by Bind.
func (g *Gateway) ServeListeners(ctx context.Context, ls *Listeners) error {
	g.adminLn = ls.Admin
	return g.Serve(ctx, ls.MCP)
}

// Serve serves on ln until ctx is done, then drains: it stops accepting,
// lets calls in flight finish within a grace period, and stops background work.
func (g *Gateway) Serve(ctx context.Context, ln net.Listener) error {
	defer func() {
		if err := g.Close(); err != nil {
			g.logger.Error("audit log not closed cleanly", "error", err)
		}
	}()
	if g.audit == nil {
		g.logger.Warn("AUDIT LOG DISABLED: calls are not recorded", "key", "audit.path")
	}
	if g.cfg.Auth.InsecureDisableAuth {
		g.logger.Warn("AUTHENTICATION IS DISABLED: any process on this machine can call every tool", "key", "auth.insecure_disable_auth", "address", ln.Addr().String())
	}
	if j := g.cfg.Auth.JWT; j != nil && j.InsecureAllowHTTPLoopbackIssuer {
		g.logger.Warn("JWT KEYS MAY BE FETCHED OVER PLAIN HTTP FROM LOOPBACK: for tests and development only",
			"key", "auth.jwt.insecure_allow_http_loopback_issuer", "jwks_url", j.JWKSURL)
	}
	if in := g.cfg.Auth.Introspection; in != nil && in.InsecureAllowHTTPLoopback {
		g.logger.Warn("TOKENS MAY BE INTROSPECTED OVER PLAIN HTTP ON LOOPBACK: for tests and development only",
			"key", "auth.introspection.insecure_allow_http_loopback", "url", in.URL)
	}
	if g.tls == nil && !config.IsLoopbackAddress(g.cfg.Listen.Address) {
		g.logger.Warn("SERVING PLAINTEXT ON A NON-LOOPBACK ADDRESS: API keys and tool traffic cross the network unencrypted unless a TLS-terminating proxy is in front",
			"key", "listen.insecure_plaintext", "address", ln.Addr().String())
	}
	if err := g.Start(ctx); err != nil {
		ln.Close()
		return err
	}
	url := g.EndpointURL(ln)
	// The cap counts TCP connections, so a TLS handshake in progress holds
	// a slot as a request does.
	ln = transport.LimitListener(ln, g.cfg.Listen.MaxConnections, func(delta int) { g.connections.Add(int64(delta)) })
	if g.tls != nil {
		ln = tls.NewListener(ln, g.tls.Config)
	}
	srv := transport.NewServer(g.cfg.Listen, g.handler, g.logger)
	watchCtx, stopWatch := context.WithCancel(ctx)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		g.watchFiles(watchCtx)
	}()
	defer func() { stopWatch(); <-watched }()

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	defer g.serveAdmin()()
	g.serving.Store(true)
	g.logger.Info("serving", "address", ln.Addr().String(), "endpoint", url, "tls", g.tls != nil, "config", g.cfg.Source)
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	g.serving.Store(false) // not ready: draining
	// An event stream is no call in flight: it would hold the drain open
	// until the grace period ends. Streams end now; calls may finish.
	g.front.streams.end()
	g.logger.Info("shutting down", "grace", shutdownGrace)
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		g.logger.Warn("shutdown grace period over, closing connections", "error", err)
		srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}

// argumentRedactor is the audit log's redactor of call arguments, or nil
// when audit.arguments.record is off.
func argumentRedactor(a config.AuditArguments) (*audit.Redactor, error) {
	if !a.Record {
		return nil, nil
	}
	patterns := make([]*regexp.Regexp, len(a.Redact))
	for i, r := range a.Redact {
		re, err := regexp.Compile(r)
		if err != nil {
			return nil, fmt.Errorf("audit.arguments.redact[%d]: %w", i, err)
		}
		patterns[i] = re
	}
	return audit.NewRedactor(a.RedactKeys, patterns, a.MaxBytes), nil
}
