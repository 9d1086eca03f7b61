package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/mcpgate/mcpgate/internal/config"
	"github.com/mcpgate/mcpgate/internal/gateway"
	"github.com/mcpgate/mcpgate/internal/privilege"
	"github.com/mcpgate/mcpgate/internal/upstream"
)

// Severities of a check finding: errors make check exit non-zero (the
// gateway would not start, or would start weaker than configured);
// warnings are weakenings the config asks for; info says what will happen.
const (
	severityError   = "error"
	severityWarning = "warning"
	severityInfo    = "info"
)

// finding is one thing `mcpgate check` reports.
type finding struct {
	Severity string `json:"severity"`
	Key      string `json:"key,omitempty"`  // the config key it is about
	Line     int    `json:"line,omitempty"` // where in the file, when known
	Message  string `json:"message"`
}

// checkReport is `mcpgate check`'s whole result (its --json form).
type checkReport struct {
	Config   string    `json:"config"`
	OK       bool      `json:"ok"`
	Findings []finding `json:"findings"`
}

func (r *checkReport) add(severity, key, format string, args ...any) {
	r.Findings = append(r.Findings, finding{Severity: severity, Key: key, Message: fmt.Sprintf(format, args...)})
}

func (r *checkReport) errors() int {
	n := 0
	for _, f := range r.Findings {
		if f.Severity == severityError {
			n++
		}
	}
	return n
}

func check(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("check", stderr)
	configPath := fs.String("config", "", "config file to check (required)")
	asJSON := fs.Bool("json", false, "print the findings as JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *configPath == "" {
		return usageError{"check: --config FILE is required"}
	}
	r, err := checkConfig(*configPath, checkHost{euid: os.Geteuid()})
	if err != nil {
		return err
	}
	printReport(stdout, r, *asJSON)
	if n := r.errors(); n > 0 {
		return fmt.Errorf("check %s: %d error(s)", *configPath, n)
	}
	return nil
}

// printReport writes r as text, a line per finding, or as JSON.
func printReport(stdout io.Writer, r *checkReport, asJSON bool) {
	if asJSON {
		b, _ := json.MarshalIndent(r, "", "  ")
		fmt.Fprintf(stdout, "%s\n", b)
	} else {
		for _, f := range r.Findings {
			where := r.Config
			if f.Line > 0 {
				where = fmt.Sprintf("%s:%d", where, f.Line)
			}
			if f.Key != "" {
				where += ": " + f.Key
			}
			fmt.Fprintf(stdout, "%s: %s: %s\n", f.Severity, where, f.Message)
		}
		if r.OK {
			fmt.Fprintf(stdout, "%s: ok\n", r.Config)
		}
	}
}

// checkHost is what check knows of the machine it runs on, passed in so
// that tests decide it.
type checkHost struct {
	euid int // the user check runs as, taken for the one serve will run as
}

// checkConfig builds the report for the config at path; the error is for
// what is not a finding (the file cannot be read at all).
func checkConfig(path string, host checkHost) (*checkReport, error) {
	r := &checkReport{Config: path, Findings: []finding{}}
	cfg, err := config.Load(path)
	var ps config.Problems
	if errors.As(err, &ps) {
		for _, p := range ps {
			r.Findings = append(r.Findings, finding{Severity: severityError, Key: p.Key, Line: p.Line, Message: p.Message})
		}
		return r, nil
	}
	if err != nil {
		return nil, err
	}
	policyWarnings, err := policyFindings(cfg)
	if err != nil {
		key, msg := policyKey(err.Error())
		r.add(severityError, key, "%s", msg)
		return r, nil
	}
	if cfg.Auth.InsecureDisableAuth {
		r.add(severityWarning, "auth.insecure_disable_auth", "authentication is disabled; any local process can call every tool")
	}
	if cfg.Listen.InsecurePlaintext && !config.IsLoopbackAddress(cfg.Listen.Address) {
		r.add(severityWarning, "listen.insecure_plaintext", "serving plaintext on a non-loopback address; only safe behind a TLS-terminating proxy")
	}
	if j := cfg.Auth.JWT; j != nil && j.InsecureAllowHTTPLoopbackIssuer {
		r.add(severityWarning, "auth.jwt.insecure_allow_http_loopback_issuer", "JWT keys may be fetched over plain http from loopback; for tests and development only")
	}
	if in := cfg.Auth.Introspection; in != nil {
		if in.InsecureAllowHTTPLoopback {
			r.add(severityWarning, "auth.introspection.insecure_allow_http_loopback", "tokens may be introspected over plain http on loopback; for tests and development only")
		}
		if _, err := in.ClientSecret.Resolve(); err != nil {
			r.add(severityError, "auth.introspection.client_secret", "%v", err)
		}
	}
	if cfg.Audit.Path == "" {
		r.add(severityWarning, "audit.path", "the audit log is off; calls are not recorded")
	}
	if w := cfg.Alerts.Webhook; w != nil && w.InsecureAllowHTTPLoopback {
		r.add(severityWarning, "alerts.webhook.insecure_allow_http_loopback", "alerts may be posted over plain http on loopback; for tests and development only")
	}
	if cfg.Tracing.Insecure {
		r.add(severityWarning, "tracing.insecure", "spans are exported over plain http to a loopback collector; use https where the collector is shared")
	}
	for _, name := range slices.Sorted(maps.Keys(cfg.Upstreams)) {
		checkUpstream(r, name, cfg.Upstreams[name])
	}
	for _, w := range policyWarnings {
		key, msg := policyKey(w)
		r.add(severityWarning, key, "%s", msg)
	}
	checkLockfile(r, cfg)
	checkRunAs(r, cfg.RunAs, host)
	r.OK = r.errors() == 0
	return r, nil
}

// policyKey splits the policy's own `policy.rules[0] ("name"): what` into
// the key and the rest.
func policyKey(s string) (key, msg string) {
	key, msg, ok := strings.Cut(s, ": ")
	if !ok || !strings.HasPrefix(key, "policy") {
		return "policy", s
	}
	return key, msg
}

// checkUpstream reports an upstream's isolation, its weakenings and the
// secrets it names.
func checkUpstream(r *checkReport, name string, u config.Upstream) {
	key := "upstreams." + name
	for _, k := range slices.Sorted(maps.Keys(u.Env)) {
		if v := u.Env[k]; v.IsSecret() {
			if _, err := v.Resolve(); err != nil {
				r.add(severityError, key+".env."+k, "%v", err)
			}
		}
	}
	if u.Auth != nil && u.Auth.Bearer != nil {
		if _, err := u.Auth.Bearer.Resolve(); err != nil {
			r.add(severityError, key+".auth.bearer", "%v", err)
		}
	}
	switch {
	case u.IsInProcess():
		r.add(severityWarning, key+".insecure_in_process", "this upstream runs inside the gateway's own process: no sandbox, no process boundary")
	case u.InsecureNoSandbox:
		r.add(severityWarning, key+".insecure_no_sandbox", "this upstream runs unsandboxed, with the gateway's user, files and network")
	case u.IsStdio():
		line, err := upstream.SandboxSummary(name, u, gateway.BuiltinCommand)
		if err != nil {
			r.add(severityError, key+".sandbox", "%v", strings.TrimPrefix(err.Error(), key+".sandbox: "))
		} else {
			r.add(severityInfo, key+".sandbox", "%s", line)
		}
	}
	if u.InsecurePlaintext {
		r.add(severityWarning, key+".insecure_plaintext", "calls and the upstream's credentials cross the network unencrypted")
	}
}

// checkRunAs reports the user the gateway will serve as: run_as resolved on
// this machine, or root's powers kept when check itself runs as root
// without run_as (the usual sign of a service started as root).
func checkRunAs(r *checkReport, runAs string, host checkHost) {
	if runAs == "" {
		if host.euid == 0 {
			r.add(severityWarning, "run_as", "running as root without run_as: the gateway would serve with root's powers; set run_as to an unprivileged user it drops to after binding its ports")
		}
		return
	}
	t, err := privilege.Lookup(runAs)
	if err != nil {
		r.add(severityError, "run_as", "%v", err)
		return
	}
	r.add(severityInfo, "run_as", "after binding its ports the gateway drops to uid %d, gid %d, groups %v", t.UID, t.GID, t.Groups)
}
