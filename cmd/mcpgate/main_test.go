package main

import (
	"context"
	"os"
	"testing"
)

// TestMain lets this test binary stand in for mcpgate when a gateway under
// test starts its built-in demo upstream: BuiltinCommand re-executes the
// running binary as "<binary> demo".
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "demo" {
		os.Exit(run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}
