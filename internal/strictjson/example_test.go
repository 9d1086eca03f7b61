package strictjson_test

import (
	"fmt"

	"github.com/mcpgate/mcpgate/internal/strictjson"
)

func ExampleParseMessage() {
	body := []byte(`{"jsonrpc":"2.0","id":7,"method":"tools/call",
		"params":{"name":"search","arguments":{"q":"go"},
		"_meta":{"io.modelcontextprotocol/protocolVersion":"2025-11-25"}}}`)
	m, err := strictjson.ParseMessage(body, strictjson.DefaultLimits())
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(m.Kind, m.Method, string(m.ID), m.Name, m.ProtocolVersion)

	// The SDK would route "paramſ" as "params"; the gate refuses to guess.
	_, err = strictjson.ParseMessage([]byte(`{"jsonrpc":"2.0","id":1,"method":"x","params":{},"paramſ":{}}`), strictjson.DefaultLimits())
	fmt.Println(err)
	// Output:
	// request tools/call 7 search 2025-11-25
	// strictjson: case-variant key "paramſ" beside "params" at $ (offset 49)
}
