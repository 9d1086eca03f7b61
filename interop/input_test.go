package interop

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestUpstreamInputForModernClient: server-everything (a legacy-era server)
// asks its client to sample, then to elicit, in the middle of a call. The
// caller is a 2026-07-28 client (TypeScript SDK v2), which cannot be sent a
// request: mcpgate answers its call with an input-required result, the SDK
// answers through its own handlers and retries with the sealed requestState,
// and mcpgate hands the answers to server-everything's waiting requests.
// The script is clients/input.mjs.
func TestUpstreamInputForModernClient(t *testing.T) {
	e := startUpstreamGateway(t)
	out, err := node(t, 2*time.Minute, []string{"MCPGATE_KEY=" + e.keys["alice"]}, "clients/input.mjs", e.g.URL, "everything.")
	if err != nil {
		t.Fatalf("clients/input.mjs failed: %v\nstdout: %s\nmcpgate log (tail):\n%s", err, out, e.g.logTail(60))
	}
	t.Logf("input.mjs: %s", strings.TrimSpace(out))
	var r struct {
		Era                 string `json:"era"`
		SamplingRequests    int    `json:"samplingRequests"`
		ElicitationRequests int    `json:"elicitationRequests"`
		Sampling            string `json:"sampling"`
		Elicitation         string `json:"elicitation"`
	}
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &r); err != nil {
		t.Fatalf("printed %q, not one JSON line: %v", out, err)
	}
	if r.Era != "modern" {
		t.Errorf("era = %q, want modern", r.Era)
	}
	if r.SamplingRequests != 1 || !strings.Contains(r.Sampling, "sampled by interop v2") || !strings.Contains(r.Sampling, "resume me") {
		t.Errorf("sampling: %d requests reached the client, the tool answered %q; want one, and this client's answer to the upstream's prompt in the result", r.SamplingRequests, r.Sampling)
	}
	if r.ElicitationRequests != 1 || !strings.Contains(r.Elicitation, "Name: interop v2") {
		t.Errorf("elicitation: %d requests reached the client, the tool answered %q; want one, and this client's answer in the result", r.ElicitationRequests, r.Elicitation)
	}
}
