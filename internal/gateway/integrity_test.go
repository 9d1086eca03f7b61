package gateway

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/config"
	"github.com/mcpgate/mcpgate/internal/pin"
)

// TestToolIntegrity: through the real gateway and a real child, with a
// lockfile pinned from that child: a tool added after the start and a tool
// whose description changes under the gateway (a rug pull) are
// quarantined: hidden from lists, uncallable, logged, counted. A tool whose
// description hides tag characters is quarantined by findings: block. After
// re-pinning, the changed tool is let through.
func TestToolIntegrity(t *testing.T) {
	lockPath := filepath.Join(t.TempDir(), "mcpgate.lock")
	pinNow := func(c *config.Config) {
		t.Helper()
		c.ApplyDefaults()
		defs, err := CollectDefinitions(context.Background(), c, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatalf("collect definitions: %v", err)
		}
		lock, err := pin.NewLock(defs)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(lockPath, lock.Marshal(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	keyPath, logPath, _ := auditFiles(t)
	var cfg *config.Config
	tg := newTestGateway(t, func(c *config.Config) {
		c.Audit.Path, c.Audit.SigningKey = logPath, keyPath
		c.ToolIntegrity = config.ToolIntegrity{Lockfile: lockPath, Mode: config.IntegrityEnforce, Findings: config.IntegrityBlock}
		pinNow(c)
		cfg = c
	})
	listed := func() string {
		t.Helper()
		_, b := tg.post(t, tg.keyA, modernBody(1, "tools/list", ""), modernHeaders("tools/list", ""))
		return string(b)
	}
	if l := listed(); !strings.Contains(l, `"victim"`) || !strings.Contains(l, `"pid"`) || strings.Contains(l, `"hidden"`) {
		t.Fatalf("pinned tools listed, the hidden-character one quarantined: %s", l)
	}
	if msg := unknownCall(t, tg, "hidden"); msg != `unknown tool "hidden"` {
		t.Fatalf("call of a quarantined tool: %s", msg)
	}

	// A tool added after the start is new to the lockfile.
	if r := callTool(t, tg, tg.keyA, "grow"); r.Error != nil {
		t.Fatal(r.Error)
	}
	// A rug pull: victim's description changes under the gateway.
	if r := callTool(t, tg, tg.keyA, "rugpull"); r.Error != nil {
		t.Fatal(r.Error)
	}
	waitFor(t, "the rug pull and the new tool quarantined", func() bool {
		l := listed()
		return !strings.Contains(l, `"victim"`) && !strings.Contains(l, `"grown"`) && strings.Contains(l, `"pid"`)
	})
	for _, name := range []string{"victim", "grown"} {
		if msg := unknownCall(t, tg, name); msg != `unknown tool "`+name+`"` {
			t.Errorf("call of quarantined %s: %s", name, msg)
		}
	}
	m := scrape(t, tg.Gateway)
	for _, want := range []string{
		`mcpgate_definition_problems_total{action="quarantined",kind="tool",problem="changed",upstream="t"} 1`,
		`mcpgate_definition_problems_total{action="quarantined",kind="tool",problem="new",upstream="t"} 1`,
		`mcpgate_definition_problems_total{action="quarantined",kind="tool",problem="finding:hidden-unicode",upstream="t"} 1`,
	} {
		if !strings.Contains(m, want+"\n") {
			t.Errorf("metrics lack %s:\n%s", want, grepLines(m, "mcpgate_definition_problems_total"))
		}
	}

	// Someone reviews the new description and re-pins: victim is back,
	// with its new description; the hidden one stays quarantined.
	pinNow(cfg)
	if err := tg.ReloadLockfile(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the re-pinned tool let through", func() bool {
		return strings.Contains(listed(), "Also keeps a copy")
	})
	if r := callTool(t, tg, tg.keyA, "victim"); r.Error != nil {
		t.Errorf("call of the re-pinned victim: %+v", r.Error)
	}
	if strings.Contains(listed(), `"hidden"`) {
		t.Error("re-pinning let a tool with findings through despite findings: block")
	}
	// Each quarantine is an audit record: a denial by mcpgate, naming the
	// definition and the problem.
	log, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`"principal":"mcpgate","method":"mcpgate/definition","upstream":"t","name":"tool grown","decision":"deny","reason":"new sha256:`,
		`"name":"tool victim","decision":"deny","reason":"changed sha256:`,
		`"name":"tool hidden","decision":"deny","reason":"finding:hidden-unicode sha256:`,
	} {
		if !strings.Contains(string(log), want) {
			t.Errorf("audit log lacks %s", want)
		}
	}
}

// TestToolIntegrityWarnMode: warn admits what enforce would quarantine,
// and still counts it.
func TestToolIntegrityWarnMode(t *testing.T) {
	lockPath := filepath.Join(t.TempDir(), "missing.lock") // warn before the first pin
	tg := newTestGateway(t, func(c *config.Config) {
		c.ToolIntegrity = config.ToolIntegrity{Lockfile: lockPath, Mode: config.IntegrityWarn}
	})
	_, b := tg.post(t, tg.keyA, modernBody(1, "tools/list", ""), modernHeaders("tools/list", ""))
	if !strings.Contains(string(b), `"victim"`) || !strings.Contains(string(b), `"hidden"`) {
		t.Fatalf("warn mode hid tools: %s", b)
	}
	m := scrape(t, tg.Gateway)
	if !strings.Contains(m, `mcpgate_definition_problems_total{action="reported",kind="tool",problem="new",upstream="t"}`) {
		t.Errorf("warn mode did not count the unpinned tools:\n%s", grepLines(m, "mcpgate_definition_problems_total"))
	}
}

// TestEnforceWithoutLockfileFails: mode enforce and no lockfile is a start
// error naming the way out.
func TestEnforceWithoutLockfileFails(t *testing.T) {
	cfg := config.Default()
	cfg.ToolIntegrity = config.ToolIntegrity{Lockfile: filepath.Join(t.TempDir(), "none.lock"), Mode: config.IntegrityEnforce}
	cfg.ApplyDefaults()
	_, err := New(cfg, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "mcpgate pin writes it") {
		t.Fatalf("New with enforce and no lockfile: %v", err)
	}
}

// unknownCall calls name and returns the error message of the answer.
func unknownCall(t *testing.T, tg *testGateway, name string) string {
	t.Helper()
	_, b := tg.post(t, tg.keyA, modernBody(1, "tools/call", `"name":"`+name+`","arguments":{}`), modernHeaders("tools/call", name))
	if r := decodeRPC(t, b); r.Error != nil {
		return r.Error.Message
	}
	return "no error: " + string(b)
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestShadowingBlocks: a tool that shadows another upstream's (equal up
// to case) is caught by the checks across upstreams and, with findings:
// block, quarantined at run time, not only reported by pin and check.
func TestShadowingBlocks(t *testing.T) {
	tg := newTestGateway(t, func(c *config.Config) {
		withTestServerSettings(func(u *config.Upstream) {
			u.Env["SHADOW"] = config.Value{Literal: "1"}
		})(c)
		c.ToolIntegrity = config.ToolIntegrity{Lockfile: filepath.Join(t.TempDir(), "none.lock"), Mode: config.IntegrityWarn, Findings: config.IntegrityBlock}
	})
	waitFor(t, "the look-alike quarantined", func() bool {
		_, b := tg.post(t, tg.keyA, modernBody(1, "tools/list", ""), modernHeaders("tools/list", ""))
		return strings.Contains(string(b), `"pid"`) && !strings.Contains(string(b), `"Echo"`)
	})
	if msg := unknownCall(t, tg, "Echo"); msg != `unknown tool "Echo"` {
		t.Errorf("call of the look-alike: %s", msg)
	}
	if m := scrape(t, tg.Gateway); !strings.Contains(m, `problem="finding:shadowing",upstream="t"} 1`) {
		t.Errorf("shadowing not counted:\n%s", grepLines(m, "mcpgate_definition_problems_total"))
	}
}
