package sandbox

import (
	"os"
	"testing"
)

// TestMain doubles as a sandbox's init: the tests start sandboxes, which
// re-execute this test binary as "mcpgate-sandbox-init".
func TestMain(m *testing.M) {
	if IsInit() {
		RunInit()
	}
	os.Exit(m.Run())
}
