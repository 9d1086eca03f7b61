package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/mcpgate/mcpgate/internal/config"
	"github.com/mcpgate/mcpgate/internal/gateway"
)

// runDefaultName is the upstream name `run` gives its server: it names the
// child in logs, its cgroup and its audit log file.
const runDefaultName = "run"

// runUsage is `mcpgate run --help`'s text before the flags.
const runUsage = `usage: mcpgate run [flags] -- COMMAND [ARGS...]

Runs one stdio MCP server in the sandbox and speaks MCP over stdin and stdout
to the process that started mcpgate (a desktop client). The server starts with
an empty environment, no network and no file of the host beyond what the
flags grant. Every message passes mcpgate's checks (strict JSON, policy, the
tools' argument schemas, limits) and is audited as the principal "local".

flags:
`

// runFlags are `mcpgate run`'s flags, as given.
type runFlags struct {
	config           string
	read, write, net []string
	memory, pids     string
	cpu              float64
	env              []string
	name             string
	noSandbox        bool
	logLevel         string
}

// runEnv is what runConfig needs from the process: the working directory
// (relative grants are made absolute against it), the environment (--env
// NAME passes a variable through) and the default audit log.
type runEnv struct {
	wd           string
	lookupEnv    func(string) (string, bool)
	defaultAudit func(name string) (logPath, keyPath string, err error)
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

// parseRunArgs parses the flags and splits off the command after "--".
func parseRunArgs(args []string, stderr io.Writer) (runFlags, []string, error) {
	var f runFlags
	fs := newFlags("run", stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), runUsage)
		fs.PrintDefaults()
	}
	fs.StringVar(&f.config, "config", "", "config file to take policy, limits, audit and tracing from (it must have no upstreams)")
	fs.Var((*stringList)(&f.read), "allow-read", "host `PATH` the server may read (repeatable)")
	fs.Var((*stringList)(&f.write), "allow-write", "host `PATH` the server may read and write (repeatable)")
	fs.Var((*stringList)(&f.net), "allow-net", "`HOST:PORT` the server may connect to, through mcpgate's proxy (repeatable)")
	fs.StringVar(&f.memory, "memory", "", "memory limit, swap included, like 512MiB or 2GiB, or unlimited (default "+config.DefaultSandboxMemory+")")
	fs.StringVar(&f.pids, "pids", "", "cap on the server's processes and threads, or unlimited (default "+config.DefaultSandboxPids+")")
	fs.Float64Var(&f.cpu, "cpu", 0, "CPU quota in `CORES` (0: none)")
	fs.Var((*stringList)(&f.env), "env", "`NAME=VALUE` to set in the server's environment, or NAME to pass this variable's value (repeatable; the server starts with an empty environment)")
	fs.StringVar(&f.name, "name", runDefaultName, "the server's name in logs and audit records")
	fs.BoolVar(&f.noSandbox, "insecure-no-sandbox", false, "run the server WITHOUT the sandbox, as this user with all its files and network (for hosts without the kernel features)")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level (logs go to stderr): debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return f, nil, err
		}
		return f, nil, usageError{err.Error()}
	}
	rest := fs.Args()
	// The flag package stops at "--" (and drops it) or at the first
	// argument that is not a flag: the command must follow an explicit "--".
	if n := len(args) - len(rest); n == 0 || args[n-1] != "--" {
		if len(rest) > 0 {
			return f, nil, usageError{fmt.Sprintf("run: unexpected argument %q: put the server's command after --", rest[0])}
		}
		return f, nil, usageError{"run: give the server's command after --, e.g. mcpgate run --allow-read DIR -- /usr/bin/node server.js DIR"}
	}
	if len(rest) == 0 {
		return f, nil, usageError{"run: the command after -- is missing"}
	}
	return f, rest, nil
}

// runConfig builds the config `run` serves: the one stdio upstream given by
// command and the flags, named f.name and mounted without a namespace (a
// client sees the server's own names), and the policy, limits, audit and tracing of
// f.config if given, else a policy allowing everything and the default
// audit log. It is validated; problems name the flag they come from.
func runConfig(f runFlags, command []string, env runEnv) (*config.Config, error) {
	cfg := &config.Config{Source: "mcpgate run"}
	if f.config != "" {
		fc, err := config.LoadPartial(f.config)
		if err != nil {
			return nil, err
		}
		if len(fc.Upstreams) > 0 {
			return nil, usageError{fmt.Sprintf("run: %s has upstreams: run wraps the one server given after --; remove upstreams from %s", f.config, f.config)}
		}
		// Only these sections apply: there is no listener (listen, admin)
		// and no credential to check (auth).
		cfg.Source, cfg.Policy, cfg.Limits, cfg.Audit, cfg.Tracing = f.config, fc.Policy, fc.Limits, fc.Audit, fc.Tracing
	} else {
		cfg.Policy.Rules = []config.PolicyRule{{
			Name:       "run-default",
			Principals: []string{config.PolicyWildcard},
			Allow:      &config.PolicyTargets{Tools: []string{"*"}, Resources: []string{"**"}, Prompts: []string{"*"}},
		}}
	}
	abs := func(paths []string) []string {
		out := make([]string, len(paths))
		for i, p := range paths {
			if p != "" && !filepath.IsAbs(p) {
				p = filepath.Join(env.wd, p)
			}
			out[i] = p
		}
		return out
	}
	none := ""
	u := config.Upstream{Command: command, Namespace: &none, InsecureNoSandbox: f.noSandbox}
	if len(f.read)+len(f.write)+len(f.net) > 0 || f.memory != "" || f.pids != "" || f.cpu != 0 {
		u.Sandbox = &config.Sandbox{
			Read:    abs(f.read),
			Write:   abs(f.write),
			Network: config.SandboxNetwork{Allow: slices.Clone(f.net)},
			Memory:  f.memory,
			Pids:    f.pids,
			CPU:     f.cpu,
		}
	}
	for _, e := range f.env {
		name, value, ok := strings.Cut(e, "=")
		if !ok {
			if value, ok = env.lookupEnv(name); !ok {
				return nil, usageError{fmt.Sprintf("run: --env %s: %s is not set in this environment (give --env %s=VALUE)", name, name, name)}
			}
		}
		if u.Env == nil {
			u.Env = map[string]config.Value{}
		}
		if _, dup := u.Env[name]; dup {
			return nil, usageError{fmt.Sprintf("run: --env %s is given twice", name)}
		}
		u.Env[name] = config.Value{Literal: value}
	}
	cfg.Upstreams = map[string]config.Upstream{f.name: u}
	cfg.ApplyDefaults()

	var ps config.Problems
	for _, p := range cfg.Validate() {
		if p.Key == "auth" {
			continue // "no way to authenticate": run's one client is its parent process
		}
		key := runFlagKey(p.Key, f.name)
		if key == p.Key && f.config != "" {
			p.Source = f.config // from the file, not the flags
		}
		p.Key = key
		ps = append(ps, p)
	}
	if len(ps) > 0 {
		return nil, usageError{"run: invalid:\n" + ps.Error()}
	}
	if cfg.Audit.Path == "" {
		// run never serves unaudited: without a configured log, it writes
		// its own in the state directory (f.name is valid by now: it names
		// the file).
		var err error
		if cfg.Audit.Path, cfg.Audit.SigningKey, err = env.defaultAudit(f.name); err != nil {
			return nil, err
		}
	}
	return cfg, nil
}

// runFlagKey names the flag a problem with the upstream's config comes
// from ("upstreams.run.sandbox.read[0]" is --allow-read[0]).
func runFlagKey(key, name string) string {
	prefix := "upstreams." + name
	if key == prefix {
		return "--name"
	}
	rest, ok := strings.CutPrefix(key, prefix+".")
	if !ok {
		return key
	}
	for _, m := range []struct{ key, flag string }{
		{"sandbox.read", "--allow-read"},
		{"sandbox.write", "--allow-write"},
		{"sandbox.network.allow", "--allow-net"},
		{"sandbox.memory", "--memory"},
		{"sandbox.pids", "--pids"},
		{"sandbox.cpu", "--cpu"},
		{"sandbox", "--insecure-no-sandbox"},
		{"env.", "--env "},
		{"command", "command"},
	} {
		if r, ok := strings.CutPrefix(rest, m.key); ok {
			return m.flag + r
		}
	}
	return key
}

// runCmd is `mcpgate run`: one stdio MCP server, sandboxed, served over this
// process's stdin and stdout. Logs go to stderr only: stdout carries the
// protocol.
func runCmd(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	f, command, err := parseRunArgs(args, stderr)
	if err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return usageError{fmt.Sprintf("--log-level: %v", err)}
	}
	wd, err := os.Getwd()
	if err != nil {
		return err
	}
	cfg, err := runConfig(f, command, runEnv{
		wd:        wd,
		lookupEnv: os.LookupEnv,
		defaultAudit: func(name string) (string, string, error) {
			return defaultAudit("audit-run-" + name + ".jsonl")
		},
	})
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	relaxLimits(cfg, f.name, logger)
	gwOpts, stopTracing, err := startTracing(cfg.Tracing, logger)
	if err != nil {
		return err
	}
	defer stopTracing() // after the session: its last spans are flushed
	g, err := gateway.New(cfg, logger, gwOpts...)
	if err != nil {
		return fmt.Errorf("build gateway: %w", err)
	}
	return g.ServeStdio(ctx, stdin, stdout)
}
