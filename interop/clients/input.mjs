// A 2026-07-28 client (TypeScript SDK v2, @modelcontextprotocol/client, pinned
// to the modern era) calls server-everything's tools that ask their client for
// input mid-call. server-everything is a legacy-era server: it sends
// sampling/createMessage and elicitation/create requests, which a stateless
// client cannot be sent; mcpgate answers the client's tools/call with an
// input-required result instead, and the client's retry (made by the SDK,
// through the handlers registered here) resumes the upstream's call.
//
// Usage: node input.mjs <url> <prefix>
// Env: MCPGATE_KEY, sent as Authorization: Bearer.
// Prints one JSON line; on a failed expectation prints "input.mjs: FAIL: ..."
// to stderr and exits 1.
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';

const [url, prefix] = process.argv.slice(2);
if (!url || prefix === undefined) {
  console.error('usage: input.mjs <url> <prefix>');
  process.exit(2);
}

class Failure extends Error {}
function expect(cond, msg, detail) {
  if (!cond) throw new Failure(detail === undefined ? msg : `${msg}: ${JSON.stringify(detail)}`);
}

const out = { samplingRequests: 0, elicitationRequests: 0 };
const watchdog = setTimeout(() => {
  console.error(`input.mjs: FAIL: did not finish within 90s; partial results: ${JSON.stringify(out)}`);
  process.exit(1);
}, 90_000);

const client = new Client(
  { name: 'interop-input-v2', version: '0.0.0' },
  { versionNegotiation: { mode: { pin: '2026-07-28' } }, capabilities: { sampling: {}, elicitation: { form: {} } } },
);
// The "LLM" and the "user" of this client: each answers the same way, so the
// test sees that the upstream's request made it here and the answer back.
client.setRequestHandler('sampling/createMessage', async (req) => {
  out.samplingRequests++;
  const asked = req.params.messages?.[0]?.content?.text ?? '';
  return { model: 'interop-model', role: 'assistant', content: { type: 'text', text: `sampled by interop v2: ${asked}` } };
});
client.setRequestHandler('elicitation/create', async () => {
  out.elicitationRequests++;
  return { action: 'accept', content: { name: 'interop v2' } };
});

function text(result) {
  return (result.content ?? []).filter((c) => c.type === 'text').map((c) => c.text).join('\n');
}

try {
  await client.connect(new StreamableHTTPClientTransport(new URL(url), {
    requestInit: { headers: { Authorization: `Bearer ${process.env.MCPGATE_KEY}` } },
  }));
  out.era = client.getProtocolEra();
  expect(out.era === 'modern', 'the client did not negotiate the modern era', out.era);

  const sampled = await client.callTool({ name: `${prefix}trigger-sampling-request`, arguments: { prompt: 'resume me', maxTokens: 16 } });
  expect(!sampled.isError, 'trigger-sampling-request returned isError', sampled.content);
  out.sampling = text(sampled);

  const elicited = await client.callTool({ name: `${prefix}trigger-elicitation-request`, arguments: {} });
  expect(!elicited.isError, 'trigger-elicitation-request returned isError', elicited.content);
  out.elicitation = text(elicited);
  await client.close();
} catch (err) {
  const what = err instanceof Failure ? err.message : `${err?.name ?? 'Error'}: ${err?.message ?? err}${err?.code !== undefined ? ` (code ${err.code})` : ''}`;
  console.error(`input.mjs: FAIL: ${what}`);
  console.error(`input.mjs: partial results: ${JSON.stringify(out)}`);
  await client.close().catch(() => {});
  process.exit(1);
}
clearTimeout(watchdog);
console.log(JSON.stringify(out));
