// A real third-party client: the TypeScript SDK v2 (@modelcontextprotocol/client),
// pinned to the modern era (2026-07-28: stateless, per-request _meta).
// Env: MCPGATE_URL, MCPGATE_KEY. Prints one JSON line; exits non-zero on failure.
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';

const url = new URL(process.env.MCPGATE_URL);
const key = process.env.MCPGATE_KEY;

function connect(headers) {
  const client = new Client(
    { name: 'interop-client-v2', version: '0.0.0' },
    { versionNegotiation: { mode: { pin: '2026-07-28' } } },
  );
  const transport = new StreamableHTTPClientTransport(url, { requestInit: { headers } });
  return { client, done: client.connect(transport) };
}

async function refused(headers) {
  const { client, done } = connect(headers);
  try {
    await done;
    await client.listTools();
  } catch (err) {
    return { refused: true, code: err.code ?? null, message: String(err.message ?? err) };
  } finally {
    await client.close().catch(() => {});
  }
  return { refused: false };
}

const { client, done } = connect({ Authorization: `Bearer ${key}` });
await done;
const tools = await client.listTools();
const echo = await client.callTool({ name: 'echo', arguments: { message: 'hello from client v2' } });
const simple = await client.callTool({ name: 'test_simple_text', arguments: {} });
const out = {
  era: client.getProtocolEra(),
  tools: tools.tools.map((t) => t.name).sort(),
  echo: echo.content?.[0]?.text ?? null,
  simple: simple.content?.[0]?.text ?? null,
};
await client.close();
out.noKey = await refused({});
out.wrongKey = await refused({ Authorization: 'Bearer mgk_not-a-real-key' });
console.log(JSON.stringify(out));
