// mcpgate patch 6 (PATCHES.md): readBatch tries the array decode only for
// input that can be an array (or null). These tests hold it to v1.8.0's
// behaviour, kept below as readBatchV180.

package mcp

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"

	internaljson "github.com/modelcontextprotocol/go-sdk/internal/json"
	"github.com/modelcontextprotocol/go-sdk/internal/jsonrpc2"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
)

// readBatchV180 is v1.8.0's readBatch.
func readBatchV180(data []byte) (msgs []jsonrpc.Message, isBatch bool, _ error) {
	var rawBatch []json.RawMessage
	if err := internaljson.Unmarshal(data, &rawBatch); err == nil {
		if len(rawBatch) == 0 {
			return nil, true, fmt.Errorf("empty batch")
		}
		for _, raw := range rawBatch {
			msg, err := jsonrpc2.DecodeMessage(raw)
			if err != nil {
				return nil, true, err
			}
			msgs = append(msgs, msg)
		}
		return msgs, true, nil
	}
	msg, err := jsonrpc2.DecodeMessage(data)
	return []jsonrpc.Message{msg}, false, err
}

// checkReadBatch fails t unless the patched readBatch and v1.8.0's agree
// on data: messages, batch flag and error text.
func checkReadBatch(t *testing.T, data []byte) {
	t.Helper()
	got, gotBatch, gotErr := readBatch(data)
	want, wantBatch, wantErr := readBatchV180(data)
	if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) || gotBatch != wantBatch {
		t.Fatalf("%q: (batch %v, error %v), v1.8.0 says (batch %v, error %v)", data, gotBatch, gotErr, wantBatch, wantErr)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%q:\n got %#v\nwant %#v", data, got, want)
	}
}

var readBatchCases = []string{
	`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}}`,
	" \t\r\n" + `{"jsonrpc":"2.0","method":"notifications/initialized"}`,
	`{"jsonrpc":"2.0","id":"a","result":{}}`,
	`[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","method":"notifications/initialized"}]`,
	` [{"jsonrpc":"2.0","id":1,"method":"ping"}]`,
	`[]`,
	`[1]`,
	`[{"jsonrpc":"2.0","id":1,"method":"ping"}`,
	`null`,
	` null`,
	`nul`,
	`nope`,
	`"a string"`,
	`42`,
	`true`,
	`false`,
	``,
	`   `,
	"\ufeff{}",
	"\x00[]",
	`{`,
	`{}`,
	`{"jsonrpc":"2.0","id":1,"method":"ping"} trailing`,
	`[{"jsonrpc":"2.0","id":1,"method":"ping"}] trailing`,
}

func TestPatchReadBatch(t *testing.T) {
	for _, c := range readBatchCases {
		checkReadBatch(t, []byte(c))
	}
}

func FuzzPatchReadBatch(f *testing.F) {
	for _, c := range readBatchCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkReadBatch(t, data)
	})
}

// BenchmarkPatchReadBatch reads one typical 2026-07-28 tools/call, as the
// streamable server does twice per request; v180 is the code before.
func BenchmarkPatchReadBatch(b *testing.B) {
	data := []byte(`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello"},` +
		`"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"loadgen","version":"1"},` +
		`"io.modelcontextprotocol/clientCapabilities":{}}}}`)
	for _, bc := range []struct {
		name string
		read func([]byte) ([]jsonrpc.Message, bool, error)
	}{{"patched", readBatch}, {"v180", readBatchV180}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := bc.read(data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
