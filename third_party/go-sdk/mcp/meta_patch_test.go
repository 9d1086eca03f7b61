// mcpgate patch 2 (PATCHES.md): validateRequestMeta decodes the four `_meta`
// keys of the new protocol in one pass. These tests hold it to v1.8.0's
// behaviour, kept below as validateRequestMetaV180.

package mcp

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"

	internaljson "github.com/modelcontextprotocol/go-sdk/internal/json"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
)

// extractRequestMetaV180 and validateRequestMetaV180 are v1.8.0's code.
func extractRequestMetaV180(rawParams json.RawMessage) Meta {
	if len(rawParams) == 0 {
		return nil
	}
	var meta struct {
		Meta Meta `json:"_meta"`
	}
	if err := internaljson.Unmarshal(rawParams, &meta); err != nil {
		return nil
	}
	return meta.Meta
}

func validateRequestMetaV180(req *jsonrpc.Request) (*validatedMeta, error) {
	if !req.IsCall() {
		return &validatedMeta{usesNewProtocol: false, initializeParams: nil}, nil
	}
	meta := extractRequestMetaV180(req.Params)
	if meta == nil {
		return &validatedMeta{usesNewProtocol: false, initializeParams: nil}, nil
	}
	protocolVersion, ok := meta[MetaKeyProtocolVersion].(string)
	if !ok || protocolVersion < protocolVersion20260728 {
		return &validatedMeta{usesNewProtocol: false, initializeParams: nil}, nil
	}
	var clientInfo *Implementation
	if _, present := meta[MetaKeyClientInfo]; present {
		var ok bool
		clientInfo, ok = decodeMetaValue[*Implementation](meta, MetaKeyClientInfo)
		if !ok {
			return nil, &jsonrpc.Error{
				Code:    jsonrpc.CodeInvalidParams,
				Message: fmt.Sprintf("invalid _meta field %q", MetaKeyClientInfo),
			}
		}
	}
	capabilities, ok := decodeMetaValue[*clientCapabilitiesV2](meta, MetaKeyClientCapabilities)
	if !ok {
		return nil, &jsonrpc.Error{
			Code:    jsonrpc.CodeInvalidParams,
			Message: fmt.Sprintf("missing or invalid _meta field %q", MetaKeyClientCapabilities),
		}
	}
	logLevel, _ := decodeMetaValue[LoggingLevel](meta, MetaKeyLogLevel)
	return &validatedMeta{usesNewProtocol: true, initializeParams: &InitializeParams{
		ProtocolVersion: protocolVersion,
		Capabilities:    capabilities.toV1(),
		ClientInfo:      clientInfo,
	}, logLevel: logLevel}, nil
}

func mustID(v float64) jsonrpc.ID {
	id, err := jsonrpc.MakeID(v)
	if err != nil {
		panic(err)
	}
	return id
}

// checkValidateRequestMeta fails t unless the patched validateRequestMeta
// and v1.8.0's agree on params, and returns what they say.
func checkValidateRequestMeta(t *testing.T, params string) *validatedMeta {
	t.Helper()
	req := &jsonrpc.Request{ID: mustID(1), Method: "tools/call"}
	if params != "" {
		req.Params = json.RawMessage(params)
	}
	got, gotErr := validateRequestMeta(req)
	want, wantErr := validateRequestMetaV180(req)
	if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) {
		t.Fatalf("params %s: error %v, v1.8.0 says %v", params, gotErr, wantErr)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("params %s:\n got %+v\nwant %+v", params, describeMeta(got), describeMeta(want))
	}
	// The port kept protocolVersionFromMessage's behaviour too.
	var wantVersion string
	if m := extractRequestMetaV180(req.Params); m != nil {
		wantVersion, _ = m[MetaKeyProtocolVersion].(string)
	}
	if v := metaProtocolVersion(req.Params); v != wantVersion {
		t.Fatalf("params %s: metaProtocolVersion %q, v1.8.0 reads %q", params, v, wantVersion)
	}
	return got
}

func describeMeta(m *validatedMeta) string {
	if m == nil || m.initializeParams == nil {
		return fmt.Sprintf("%+v", m)
	}
	p := m.initializeParams
	return fmt.Sprintf("new=%v version=%q info=%+v caps=%+v level=%q", m.usesNewProtocol, p.ProtocolVersion, p.ClientInfo, p.Capabilities, m.logLevel)
}

var metaPatchSeeds = []string{
	``,
	`{}`,
	`null`,
	`{"_meta":null}`,
	`{"_meta":[]}`,
	`{"_meta":"x"}`,
	`{"_meta":{}}`,
	`{"_meta":{"io.modelcontextprotocol/protocolVersion":"2025-11-25"}}`,
	`{"_meta":{"io.modelcontextprotocol/protocolVersion":20260728}}`,
	`{"_meta":{"io.modelcontextprotocol/protocolVersion":null,"io.modelcontextprotocol/clientCapabilities":{}}}`,
	`{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}`,
	`{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}`,
	`{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":null}}`,
	`{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":[]}}`,
	`{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":"x"}}`,
	`{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{"roots":{"listChanged":true},"sampling":{},"elicitation":{"form":{}},"experimental":{"x":{"y":1}}}}}`,
	`{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{"roots":7}}}`,
	`{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/clientInfo":null}}`,
	`{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/clientInfo":{"name":"c","version":"1","title":"T"}}}`,
	`{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/clientInfo":"c"}}`,
	`{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/clientInfo":{"name":1}}}`,
	`{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/logLevel":"debug"}}`,
	`{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/logLevel":3}}`,
	`{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/logLevel":null}}`,
	`{"_meta":{"io.modelcontextprotocol/protocolVersion":"2027-01-01","io.modelcontextprotocol/clientCapabilities":{},"progressToken":"p"},"name":"echo","arguments":{"message":"hi"}}`,
	`{"_meta":{"io.modelcontextprotocol/protocolversion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}`,
	`{"_META":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}`,
	`{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/protocolVersion":"2025-11-25","io.modelcontextprotocol/clientCapabilities":{}}}`,
	`{"name":{"_meta":1},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}`,
	`{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}} trailing`,
	`{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28",`,
}

func TestPatchValidateRequestMeta(t *testing.T) {
	for _, params := range metaPatchSeeds {
		checkValidateRequestMeta(t, params)
	}
	// The cases that matter most, spelled out.
	if m := checkValidateRequestMeta(t, metaPatchSeeds[11]); !m.usesNewProtocol || m.initializeParams.ProtocolVersion != "2026-07-28" {
		t.Fatalf("a complete triple does not select the new protocol: %s", describeMeta(m))
	}
	if m := checkValidateRequestMeta(t, metaPatchSeeds[7]); m.usesNewProtocol {
		t.Fatal("an old protocol version selects the new protocol")
	}
}

func FuzzPatchValidateRequestMeta(f *testing.F) {
	for _, s := range metaPatchSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, params string) {
		checkValidateRequestMeta(t, params)
	})
}

// BenchmarkPatchValidateRequestMeta compares the patch with v1.8.0 on a
// typical 2026-07-28 tools/call, in one run.
func BenchmarkPatchValidateRequestMeta(b *testing.B) {
	req := &jsonrpc.Request{ID: mustID(1), Method: "tools/call", Params: json.RawMessage(`{"name":"echo","arguments":{"message":"hello"},` +
		`"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"mcpgate","version":"1.0.0"},` +
		`"io.modelcontextprotocol/clientCapabilities":{"roots":{"listChanged":true},"sampling":{},"elicitation":{"form":{},"url":{}}}}}`)}
	for name, validate := range map[string]func(*jsonrpc.Request) (*validatedMeta, error){
		"v1.8.0": validateRequestMetaV180, "patched": validateRequestMeta,
	} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if m, err := validate(req); err != nil || !m.usesNewProtocol {
					b.Fatal(m, err)
				}
			}
		})
	}
}
