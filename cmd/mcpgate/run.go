package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"golang.org/x/mod/sumdb/note"

	"github.com/mcpgate/mcpgate/internal/authn"
	"github.com/mcpgate/mcpgate/internal/config"
	"github.com/mcpgate/mcpgate/internal/gateway"
	"github.com/mcpgate/mcpgate/internal/privilege"
	"github.com/mcpgate/mcpgate/internal/sandbox"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
	// exitInterrupted: a second signal cut the drain short.
	exitInterrupted = 130
)

// defaultConfigFile is read by `serve` when no --config is given.
const defaultConfigFile = "mcpgate.yaml"

const usage = `mcpgate: a security gateway for MCP servers

usage:
  mcpgate serve [--config FILE] [--listen ADDR] [--admin ADDR]
                                                  serve MCP on /mcp, metrics and health on the admin address
                                                  (no config and no ./mcpgate.yaml: the embedded default)
  mcpgate run [--config FILE] [--allow-read PATH] [--allow-write PATH] [--allow-net HOST:PORT]
              [--memory SIZE] [--pids N] [--cpu CORES] [--env NAME[=VALUE]] [--name NAME] -- COMMAND [ARGS...]
                                                  run one stdio MCP server in the sandbox and serve it over
                                                  stdin/stdout (what a desktop client's config launches)
  mcpgate check --config FILE [--json]            validate a config and report its weakenings; exit non-zero on errors
  mcpgate pin --config FILE [--lockfile PATH]     start every upstream and write the tool lockfile (mcpgate.lock)
  mcpgate policy explain --config FILE --principal ID --tool NAME [--args JSON]
                                                  show the policy's decision and the rule that made it
                                                  (or --resource URI, --prompt NAME); exit 0 allow, 1 deny
  mcpgate keys new [--id NAME]                    print a new API key and the config line that accepts it
  mcpgate audit keygen|verify ...                 make an audit signing key pair; verify an audit log (FILE --key PUBFILE)
  mcpgate demo [--listen ADDR]                    serve the demo MCP server over stdio (what builtin: demo runs),
                                                  or over HTTP on a loopback address
  mcpgate version                                 print the version
`

// run is the whole program; main only wires the process to it.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	var err error
	switch args[0] {
	case "serve":
		err = serve(ctx, args[1:], stdout, stderr)
	case "check":
		err = check(args[1:], stdout, stderr)
	case "keys":
		err = keys(args[1:], stdout, stderr)
	case "policy":
		err = policyCmd(args[1:], stdout, stderr)
	case "pin":
		err = pinCmd(ctx, args[1:], stdout, stderr)
	case "audit":
		err = auditCmd(args[1:], stdout, stderr)
	case "run":
		err = runCmd(ctx, args[1:], stdin, stdout, stderr)
	case "demo":
		err = demoCmd(ctx, args[1:], stdin, stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "mcpgate", gateway.Version())
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "mcpgate: unknown command %q\n\n%s", args[0], usage)
		return exitUsage
	}
	var ue usageError
	var ec exitCode
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ec):
		return int(ec)
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "mcpgate: %v\n", err)
		return exitUsage
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	default:
		fmt.Fprintf(stderr, "mcpgate: %v\n", err)
		return exitError
	}
}

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("mcpgate "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	return nil
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("serve", stderr)
	configPath := fs.String("config", "", "config file (default ./"+defaultConfigFile+" if present, else the embedded default)")
	listen := fs.String("listen", "", "listen address host:port, overriding listen.address")
	admin := fs.String("admin", "", "admin (metrics, health) listener address host:port, overriding admin.address")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return usageError{fmt.Sprintf("--log-level: %v", err)}
	}
	defer startGCTuner()()
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	cfg, generatedKey, err := loadServeConfig(*configPath, *listen, *admin)
	if err != nil {
		return err
	}
	// The ports are bound first, so that a root gateway can take low ports
	// and then drop to run_as before it opens anything else: the audit log,
	// the TLS files and every upstream are opened as the final user.
	ls, err := gateway.Bind(cfg)
	if err != nil {
		return err
	}
	if err := dropPrivileges(cfg.RunAs, logger); err != nil {
		ls.Close()
		return err
	}
	if generatedKey != "" {
		relaxLimits(cfg, config.BuiltinDemo, logger)
	}
	gwOpts, stopTracing, err := startTracing(cfg.Tracing, logger)
	if err != nil {
		ls.Close()
		return err
	}
	defer stopTracing() // after the gateway has drained: its last spans are flushed
	g, err := gateway.New(cfg, logger, gwOpts...)
	if err != nil {
		ls.Close()
		return fmt.Errorf("build gateway: %w", err)
	}
	if fp := g.TLSFingerprint(); fp != "" {
		printFingerprint(stdout, g.EndpointURL(ls.MCP), fp)
	}
	if generatedKey != "" {
		printConnectHelp(stdout, g.EndpointURL(ls.MCP), generatedKey, cfg.Audit.Path)
	}
	defer reloadOnHangup(g)()
	return g.ServeListeners(ctx, ls)
}

// dropPrivileges becomes the run_as user once the ports are bound. Before
// the drop, a root gateway hands itself a cgroup of its own (see
// sandbox.DelegateCgroups) so that its sandboxes keep their limits. A root
// gateway without run_as is warned about: it works, but a flaw in it would
// be a flaw with root's powers.
func dropPrivileges(runAs string, logger *slog.Logger) error {
	euid := os.Geteuid()
	if runAs == "" {
		if euid == 0 {
			logger.Warn("RUNNING AS ROOT: set run_as to drop to an unprivileged user once the ports are bound", "key", "run_as")
		}
		return nil
	}
	target, err := privilege.Lookup(runAs)
	if err != nil {
		return err
	}
	if euid != 0 {
		if euid == target.UID {
			return nil // started as the run_as user already (say, by a service manager)
		}
		return fmt.Errorf("run_as %s: %w (mcpgate runs as uid %d)", runAs, privilege.ErrNotRoot, euid)
	}
	if err := sandbox.DelegateCgroups(target.UID, target.GID); err != nil {
		logger.Warn("no cgroup handed to the run_as user: sandboxes that need memory, pids or cpu limits will not start",
			"key", "run_as", "error", err)
	}
	if err := privilege.Drop(target); err != nil {
		return err
	}
	logger.Info("privileges dropped", "run_as", runAs, "uid", target.UID, "gid", target.GID, "groups", target.Groups)
	return nil
}

// reloadOnHangup reloads the gateway's policy on every SIGHUP until the
// returned stop is called.
func reloadOnHangup(g *gateway.Gateway) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			select {
			case <-hup:
				g.ReloadPolicy() // logged and counted either way
				g.ReloadLockfile()
			case <-done:
				return
			}
		}
	}()
	return func() {
		signal.Stop(hup)
		close(done)
		<-stopped
	}
}

// relaxLimits lets upstream name run where resource limits cannot be set
// (an unprivileged user without a delegated cgroup) when nobody asked for
// limits: the embedded default's demo, and `mcpgate run` without --memory
// or --pids (a desktop user is rarely root). The server stays isolated in
// every other way, and the lack is warned about. A config file that names
// limits, or asks for them by default, gets no such leniency: its start
// fails, naming the fix.
func relaxLimits(cfg *config.Config, name string, logger *slog.Logger) {
	caps := sandbox.Probe()
	u, ok := cfg.Upstreams[name]
	if !ok || caps.CgroupsErr == nil || u.InsecureNoSandbox || !u.IsStdio() {
		return
	}
	sb := config.Sandbox{}
	if u.Sandbox != nil {
		sb = *u.Sandbox
	}
	if sb.Memory != "" || sb.Pids != "" || sb.CPU != 0 {
		return
	}
	sb.Memory, sb.Pids = config.Unlimited, config.Unlimited
	u.Sandbox = &sb
	cfg.Upstreams[name] = u
	logger.Warn("no writable cgroup tree: the server runs sandboxed but without memory and pids limits", "upstream", name, "error", caps.CgroupsErr)
}

// loadServeConfig picks the config: --config, else ./mcpgate.yaml, else the
// embedded default with a key generated for this run (returned so it can be
// shown once; it is never logged or stored).
func loadServeConfig(path, listen, admin string) (cfg *config.Config, generatedKey string, err error) {
	if path == "" {
		if _, statErr := os.Stat(defaultConfigFile); statErr == nil {
			path = defaultConfigFile
		} else if !errors.Is(statErr, fs.ErrNotExist) {
			return nil, "", fmt.Errorf("stat %s: %w", defaultConfigFile, statErr)
		}
	}
	if path == "" {
		cfg = config.Default()
		key, digest := authn.NewKey()
		cfg.Auth.APIKeys = []config.APIKey{{ID: "default", SHA256: digest, Roles: []string{"admin"}}}
		generatedKey = key
		if cfg.Audit.Path, cfg.Audit.SigningKey, err = defaultAudit("audit.jsonl"); err != nil {
			return nil, "", err
		}
	} else if cfg, err = config.Load(path); err != nil {
		return nil, "", err
	}
	if listen != "" {
		cfg.Listen.Address = listen
	}
	if admin != "" {
		cfg.Admin.Address = admin
	}
	if ps := cfg.Validate(); len(ps) > 0 {
		for i := range ps {
			ps[i].Source = cfg.Source
		}
		return nil, "", ps
	}
	return cfg, generatedKey, nil
}

// printFingerprint shows the self-signed certificate's fingerprint once, on
// stdout: no CA vouches for the certificate, so this is how a client knows it
// reached this mcpgate and not an impostor.
func printFingerprint(w io.Writer, url, fingerprint string) {
	fmt.Fprintf(w, `mcpgate is serving TLS with a self-signed certificate made for this run.

  MCP endpoint:         %s
  SHA-256 fingerprint:  %s
                        (pin it in the client, or compare it with what the client reports)

`, url, fingerprint)
}

// defaultAudit prepares a default audit log, the file logName in the state
// directory ($XDG_STATE_HOME/mcpgate, else ~/.local/state/mcpgate), making
// the signing key the default logs share on first use. If that fails, serve
// (and run) fail: the defaults never serve unaudited. Each process needs a
// file of its own: a log has one writer.
func defaultAudit(logName string) (logPath, keyPath string, err error) {
	dir := os.Getenv("XDG_STATE_HOME")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", "", fmt.Errorf("find state directory for the audit log: %w", err)
		}
		dir = filepath.Join(home, ".local", "state")
	}
	dir = filepath.Join(dir, "mcpgate")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", fmt.Errorf("create state directory: %w", err)
	}
	logPath, keyPath = filepath.Join(dir, logName), filepath.Join(dir, "audit.key")
	if _, err := os.Stat(keyPath); errors.Is(err, fs.ErrNotExist) {
		skey, vkey, err := note.GenerateKey(rand.Reader, "mcpgate-audit")
		if err != nil {
			return "", "", fmt.Errorf("generate audit signing key: %w", err)
		}
		if err := writeNew(keyPath, skey+"\n", 0o600); err != nil {
			return "", "", err
		}
		if err := writeNew(filepath.Join(dir, "audit.pub"), vkey+"\n", 0o644); err != nil {
			return "", "", err
		}
	}
	return logPath, keyPath, nil
}

func printConnectHelp(w io.Writer, url, key, auditPath string) {
	fmt.Fprintf(w, `mcpgate is serving its built-in demo MCP server (embedded default config).

  MCP endpoint:  %s
  API key:       %s
                 (generated for this run and shown only here; send it as "Authorization: Bearer <key>")
  Audit log:     %s
                 (verify: mcpgate audit verify %s --key %s)

Try it:
  curl -s %s -H 'Authorization: Bearer %s' \
    -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
    -H 'MCP-Protocol-Version: 2026-07-28' -H 'Mcp-Method: tools/list' \
    -d '{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}'

`, url, key, auditPath, auditPath, filepath.Join(filepath.Dir(auditPath), "audit.pub"), url, key)
}

func keys(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "new" {
		return usageError{"keys: usage: mcpgate keys new [--id NAME]"}
	}
	fs := newFlags("keys new", stderr)
	id := fs.String("id", "client", "the key's id, as it appears in logs and audit")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if !config.ValidID(*id) {
		return usageError{fmt.Sprintf("keys new: --id %q: use letters, digits and _.@-", *id)}
	}
	key, digest := authn.NewKey()
	fmt.Fprintf(stdout, `API key (give it to the client; it is shown only now and not stored):
  %s

Add this line under auth.api_keys in the config (it holds only the key's SHA-256):
    - {id: %s, sha256: "%s", roles: []}
`, key, *id, digest)
	return nil
}
