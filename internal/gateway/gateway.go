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
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"golang.org/x/mod/sumdb/note"

	"github.com/mcpgate/mcpgate/internal/audit"
	"github.com/mcpgate/mcpgate/internal/authn"
	"github.com/mcpgate/mcpgate/internal/config"
	"github.com/mcpgate/mcpgate/internal/limits"
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
}

// New builds a gateway from a validated config.
func New(cfg *config.Config, logger *slog.Logger) (*Gateway, error) {
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
	g := &Gateway{cfg: cfg, logger: logger, metrics: telemetry.New(Version())}
	if g.integrity, err = newIntegrity(cfg.ToolIntegrity, logger.With("component", "integrity"), g.metrics); err != nil {
		return nil, err
	}
	if cfg.Listen.TLS != nil {
		if g.tls, err = transport.NewServerTLS(*cfg.Listen.TLS, cfg.Listen.AllowedHosts, logger.With("component", "tls")); err != nil {
			return nil, fmt.Errorf("configure TLS: %w", err)
		}
	}
	if cfg.Audit.Path != "" {
		if g.audit, err = openAudit(cfg.Audit, logger); err != nil {
			return nil, err
		}
	}
	sdkLogger := logger.With("component", "mcp-sdk")
	catalogOpts := upstream.Options{
		Version:   Version(),
		Owner:     requestOwner,
		Logger:    logger,
		SDKLogger: sdkLogger,
		Metrics:   g.metrics,
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
	modern := mcp.NewStreamableHTTPHandler(getServer, &mcp.StreamableHTTPOptions{
		Stateless:                    true,
		PropagateRequestCancellation: true,
		DisableLocalhostProtection:   true,
		MaxRequestBodyBytes:          cfg.Listen.MaxBodyBytes,
		Logger:                       sdkLogger,
	})
	jsonLimits := strictjson.DefaultLimits()
	jsonLimits.MaxBytes = int(cfg.Listen.MaxBodyBytes)
	jsonLimits.MaxDepth = cfg.Listen.MaxJSONDepth
	lim := cfg.Limits
	f := &front{
		auth:          authenticator,
		legacy:        bindSessions(legacy, cfg.Auth.InsecureDisableAuth),
		modern:        bindSessions(modern, cfg.Auth.InsecureDisableAuth),
		limits:        jsonLimits,
		maxBody:       cfg.Listen.MaxBodyBytes,
		readTimeout:   cfg.Listen.ReadTimeout,
		writeTimeout:  cfg.Listen.WriteTimeout,
		streamTimeout: cfg.Listen.StreamTimeout,
		challenge:     challenge(cfg.Auth),
		logger:        logger,
		metrics:       g.metrics,
		rate:          limits.NewBuckets(lim.PerPrincipal.Rate, lim.PerPrincipal.Burst, lim.MaxTrackedPrincipals, nil),
		toolRate:      limits.NewBuckets(lim.PerPrincipalTool.Rate, lim.PerPrincipalTool.Burst, lim.MaxTrackedPrincipals, nil),
		concurrency:   limits.NewConcurrency(lim.PerPrincipal.Concurrent, lim.ConcurrentTotal),
	}
	if g.audit != nil {
		f.audit = g.audit // a nil *audit.Log must not become a non-nil Auditor
		g.authz.audit = g.audit
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
	guard := transport.NewHostGuard(cfg.Listen, g.tls != nil)
	guard.OnRefusal = g.metrics.Refusal
	g.handler = guard.Wrap(mux, logger)
	return g, nil
}

// openAudit opens the audit log with the configured signing key. The key
// file must be readable by its owner only: whoever reads it can forge
// checkpoints.
func openAudit(a config.Audit, logger *slog.Logger) (*audit.Log, error) {
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
		Logger:             logger.With("component", "audit"),
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
	}
	return g.catalog.Start(ctx)
}

// Close releases what New and Start opened: the upstreams (children are
// stopped) and the audit log, after a final signed checkpoint. Serve calls
// it; call it only for a gateway never served.
func (g *Gateway) Close() error {
	g.catalog.Close()
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
	if err != nil || a.JWT == nil {
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
	return auth.RequireBearerToken(verify, &auth.RequireBearerTokenOptions{AllowMissingExpiration: true})(h)
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

// Listen binds the configured address.
func (g *Gateway) Listen() (net.Listener, error) {
	ln, err := net.Listen("tcp", g.cfg.Listen.Address)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", g.cfg.Listen.Address, err)
	}
	if err := g.listenAdmin(); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
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
	if g.tls == nil && !config.IsLoopbackAddress(g.cfg.Listen.Address) {
		g.logger.Warn("SERVING PLAINTEXT ON A NON-LOOPBACK ADDRESS: API keys and tool traffic cross the network unencrypted unless a TLS-terminating proxy is in front",
			"key", "listen.insecure_plaintext", "address", ln.Addr().String())
	}
	if err := g.Start(ctx); err != nil {
		ln.Close()
		return err
	}
	url := g.EndpointURL(ln)
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
