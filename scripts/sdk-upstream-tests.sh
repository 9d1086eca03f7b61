#!/usr/bin/env bash
# The go-sdk's own tests, from the release third_party/go-sdk is cut from,
# run against the patched copy: the patches must not change what the SDK's
# authors test. The release (tests included) comes from the Go module proxy;
# the patched files are laid over it in a scratch directory.
set -euo pipefail
cd "$(dirname "$0")/.."

version=v1.8.0 # the release third_party/go-sdk/PATCHES.md names
release=$(go mod download -json "github.com/modelcontextprotocol/go-sdk@$version" |
	sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
if [ ! -d "$release" ]; then
	echo "go-sdk $version not found in the module cache" >&2
	exit 1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -R "$release"/. "$work"
chmod -R u+w "$work"
cp -R third_party/go-sdk/. "$work"
cd "$work"
# Skipped: tests that fail now and then on the unpatched release itself.
# TestStreamableStateful_DiscoverDoesNotLeakSession counts the server's
# sessions right after a client closes, while the server may still be
# tearing the last one down: 5 failures in 40 runs of pristine v1.8.0
# (go test -count=40 -run it ./mcp/, 2026-11-24), 3 in 40 patched.
# TestStreamableSessionTimeout keeps a session with a 50ms timeout alive by
# requests (its own comment: "relies on timing and may be flaky"): 4
# failures in 80 runs of pristine v1.8.0, 0 in 80 patched, and once in a
# CI run patched, with the other packages' tests on the same 2 vCPUs.
flaky='^(TestStreamableStateful_DiscoverDoesNotLeakSession|TestStreamableSessionTimeout)$'
go test -count=1 -skip "$flaky" ./mcp/ ./internal/... ./jsonrpc/ ./auth/ ./oauthex/
