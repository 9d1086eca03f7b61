// A real third-party client: the TypeScript SDK v1 (@modelcontextprotocol/sdk),
// which speaks the legacy era (2025-11-25: initialize, Mcp-Session-Id).
// Env: MCPGATE_URL, MCPGATE_KEY. Prints one JSON line; exits non-zero on failure.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

const url = new URL(process.env.MCPGATE_URL);
const key = process.env.MCPGATE_KEY;

function connect(headers) {
  const client = new Client({ name: 'interop-sdk-v1', version: '0.0.0' }, { capabilities: {} });
  const transport = new StreamableHTTPClientTransport(url, { requestInit: { headers } });
  return { client, transport, done: client.connect(transport) };
}

async function refused(headers) {
  const { client, done } = connect(headers);
  try {
    await done;
  } catch (err) {
    return { refused: true, code: err.code ?? null, message: String(err.message ?? err) };
  } finally {
    await client.close().catch(() => {});
  }
  return { refused: false };
}

const { client, transport, done } = connect({ Authorization: `Bearer ${key}` });
await done;
const tools = await client.listTools();
const echo = await client.callTool({ name: 'echo', arguments: { message: 'hello from sdk v1' } });
const simple = await client.callTool({ name: 'test_simple_text', arguments: {} });
const out = {
  protocolVersion: transport.protocolVersion ?? null,
  sessionId: transport.sessionId ?? null,
  tools: tools.tools.map((t) => t.name).sort(),
  echo: echo.content?.[0]?.text ?? null,
  simple: simple.content?.[0]?.text ?? null,
};
await transport.terminateSession().catch(() => {});
await client.close();
out.noKey = await refused({});
out.wrongKey = await refused({ Authorization: 'Bearer mgk_not-a-real-key' });
console.log(JSON.stringify(out));
