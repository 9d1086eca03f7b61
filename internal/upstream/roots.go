package upstream

//lint:file-ignore SA1019 roots are deprecated in 2026-07-28 (SEP-2577) but still negotiated; this file is where their SDK fields are read.

import "github.com/modelcontextprotocol/go-sdk/mcp"

// rootsDeclared reads the roots capability from either of the SDK's fields.
func rootsDeclared(caps *mcp.ClientCapabilities) (declared, listChanged bool) {
	v2 := caps.RootsV2
	v1 := caps.Roots
	return v2 != nil || v1.ListChanged, v1.ListChanged || (v2 != nil && v2.ListChanged)
}
