package gateway

import (
	"bytes"
	"crypto/rand"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/mcpgate/mcpgate/internal/config"
	"github.com/mcpgate/mcpgate/internal/demo"
)

// TestSecretsNeverLeak: a secret from env: (a child's environment) and one
// from file: (a remote upstream's bearer) reach where they are meant to, and
// nowhere else: not the gateway's logs at debug level, not the audit log,
// not the metrics, not any child's command line, not an error a client gets.
func TestSecretsNeverLeak(t *testing.T) {
	envSecret := "envsecret-" + rand.Text()
	fileSecret := "filesecret-" + rand.Text()
	t.Setenv("MCPGATE_TEST_ENV_SECRET", envSecret)
	secretFile := filepath.Join(t.TempDir(), "bearer")
	if err := os.WriteFile(secretFile, []byte(fileSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The remote upstream: the demo over HTTP, recording what it is sent.
	var mu sync.Mutex
	var bearers []string
	remote := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		bearers = append(bearers, r.Header.Get("Authorization"))
		mu.Unlock()
		demo.New(nil).Handler().ServeHTTP(w, r)
	}))
	defer remote.Close()

	keyPath, logPath, _ := auditFiles(t)
	var logs bytes.Buffer
	var logMu sync.Mutex
	logger := slog.New(slog.NewTextHandler(lockedWriter{&logs, &logMu}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	tg := newLoggedTestGateway(t, func(c *config.Config) {
		c.Audit.Path, c.Audit.SigningKey = logPath, keyPath
		delete(c.Upstreams, "demo") // the remote one serves the same resources
		c.Upstreams["t"].Env["TOKEN"] = config.Value{Secret: "env:MCPGATE_TEST_ENV_SECRET"}
		c.Upstreams["r"] = config.Upstream{URL: remote.URL + "/mcp", Auth: &config.UpstreamAuth{Bearer: &config.Value{Secret: "file:" + secretFile}}}
	}, logger)

	// Traffic, including failures: an allowed call to each upstream, an
	// unknown tool, a bad argument.
	for _, body := range []string{
		modernBody(1, "tools/list", ""),
		modernBody(2, "tools/call", `"name":"pid","arguments":{}`),
		modernBody(3, "tools/call", `"name":"r.echo","arguments":{"message":"hi"}`),
		modernBody(4, "tools/call", `"name":"nope","arguments":{}`),
		modernBody(5, "tools/call", `"name":"note","arguments":{"n":"x"}`),
	} {
		_, b := tg.post(t, tg.keyA, body, modernHeaders("tools/call", ""))
		for _, s := range []string{envSecret, fileSecret} {
			if strings.Contains(string(b), s) {
				t.Errorf("a client's answer holds a secret: %s", b)
			}
		}
	}
	// Controls: each secret did reach its destination.
	mu.Lock()
	sawBearer := strings.Join(bearers, " ")
	mu.Unlock()
	if !strings.Contains(sawBearer, "Bearer "+fileSecret) {
		t.Fatalf("the remote upstream never got its bearer (the test would prove nothing)")
	}
	children := childrenRunning(t, "testserver")
	if len(children) == 0 {
		t.Fatal("no test server child to inspect")
	}
	gotEnv := false
	for _, pid := range children {
		env, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "environ"))
		gotEnv = gotEnv || bytes.Contains(env, []byte(envSecret))
		cmdline, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
		for _, s := range []string{envSecret, fileSecret} {
			if bytes.Contains(cmdline, []byte(s)) {
				t.Errorf("child %d's command line holds a secret", pid)
			}
		}
	}
	if !gotEnv {
		t.Fatal("the child never got its environment secret (the test would prove nothing)")
	}
	metrics := scrape(t, tg.Gateway)
	tg.Close()
	audit, _ := os.ReadFile(logPath)
	logMu.Lock()
	logged := logs.String()
	logMu.Unlock()
	if len(logged) == 0 || len(audit) == 0 {
		t.Fatal("nothing logged or audited: the test would prove nothing")
	}
	for where, text := range map[string]string{"logs": logged, "audit log": string(audit), "metrics": metrics} {
		for _, s := range []string{envSecret, fileSecret} {
			if strings.Contains(text, s) {
				t.Errorf("the %s hold a secret", where)
			}
		}
	}
}

type lockedWriter struct {
	b  *bytes.Buffer
	mu *sync.Mutex
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}
