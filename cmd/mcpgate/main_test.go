package main

import (
	"context"
	"github.com/mcpgate/mcpgate/internal/sandbox"
	"os"
	"testing"
)

// TestMain lets this test binary stand in for mcpgate when a gateway under
// test starts its built-in demo upstream in a sandbox: the sandbox's init
// and then BuiltinCommand re-execute the running binary ("<binary> demo").
func TestMain(m *testing.M) {
	if sandbox.IsInit() {
		sandbox.RunInit()
	}
	if len(os.Args) > 1 && os.Args[1] == "demo" {
		os.Exit(run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}
