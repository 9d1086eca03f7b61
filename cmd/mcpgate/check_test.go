package main

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files of TestCheckGolden")

// TestCheckGolden: one config per kind of finding in testdata/check, each
// checked with --json against its golden file (go test -run
// TestCheckGolden -update rewrites them). The configs have no sandboxed
// upstream, and check is told it runs as uid 1000 (as root for configs
// named root*), so the output does not depend on the host.
func TestCheckGolden(t *testing.T) {
	configs, err := filepath.Glob("testdata/check/*.yaml")
	if err != nil || len(configs) == 0 {
		t.Fatalf("no test configs: %v", err)
	}
	for _, cfg := range configs {
		name := strings.TrimSuffix(filepath.Base(cfg), ".yaml")
		t.Run(name, func(t *testing.T) {
			host := checkHost{euid: 1000}
			if strings.HasPrefix(name, "root") {
				host.euid = 0
			}
			r, err := checkConfig(cfg, host)
			if err != nil {
				t.Fatal(err)
			}
			var buf strings.Builder
			printReport(&buf, r, true)
			out := buf.String()
			golden := strings.TrimSuffix(cfg, ".yaml") + ".golden.json"
			if *update {
				if err := os.WriteFile(golden, []byte(out), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (go test -run TestCheckGolden -update writes it)", err)
			}
			if out != string(want) {
				t.Errorf("check --json %s:\n%s\nwant (%s):\n%s", cfg, out, golden, want)
			}
			// Errors exit non-zero; warnings alone do not.
			wantCode := exitOK
			if strings.Contains(out, `"severity": "error"`) {
				wantCode = exitError
			}
			code, cliOut, errOut := runCLI(t, "check", "--json", "--config", cfg)
			if code != wantCode {
				t.Errorf("exit %d, want %d (%s)", code, wantCode, errOut)
			}
			if host.euid == os.Geteuid() && cliOut != out {
				t.Errorf("the command printed\n%s\nwant\n%s", cliOut, out)
			}
		})
	}
}

// TestCheckSecretFilePermissions: a file secret others can read is an
// error naming the key, and its content is never printed.
func TestCheckSecretFilePermissions(t *testing.T) {
	dir := t.TempDir()
	secretPath := filepath.Join(dir, "token")
	os.WriteFile(secretPath, []byte("s3cr3t-value"), 0o644)
	cfg := filepath.Join(dir, "c.yaml")
	os.WriteFile(cfg, []byte("auth: {api_keys: [{id: a, sha256: \""+strings.Repeat("ab", 32)+"\"}]}\npolicy: {rules: []}\n"+
		"upstreams:\n  s: {url: \"https://s.example.com/mcp\", auth: {bearer: {secret: \"file:"+secretPath+"\"}}}\n"), 0o600)
	code, out, _ := runCLI(t, "check", "--config", cfg)
	if code != exitError || !strings.Contains(out, "error: "+cfg+": upstreams.s.auth.bearer: ") || strings.Contains(out, "s3cr3t") {
		t.Fatalf("check with a world-readable secret file: code %d\n%s", code, out)
	}
	os.Chmod(secretPath, 0o600)
	if code, out, _ := runCLI(t, "check", "--config", cfg); code != exitOK {
		t.Fatalf("check with a private secret file: code %d\n%s", code, out)
	}
}
