// Drives the npm reference servers (server-everything, server-filesystem,
// server-memory) with a real third-party client, either through mcpgate over
// Streamable HTTP or directly over stdio (to validate the scenarios without
// mcpgate).
//
// Usage:
//   node upstream.mjs <url>  <era> <prefix> <scenario> [scenario args...]
//   node upstream.mjs stdio  <era> <prefix> <scenario> [scenario args...] -- <server command...>
//
//   era:      legacy  @modelcontextprotocol/sdk 1.x Client (2025-11-25, sessions)
//             modern  @modelcontextprotocol/client 2.x, pinned to 2026-07-28 over HTTP;
//                     over stdio (the reference servers are legacy-era only) it
//                     uses versionNegotiation 'legacy' so its code paths still run.
//   prefix:   what the tool and prompt names start with: "everything." through
//             mcpgate, "" directly.
//   scenario: everything | fs <allowed dir> | memory-write <entity name> | memory-read
//
// Env: MCPGATE_KEY (HTTP only), sent as Authorization: Bearer. In stdio mode the
// server inherits this process's environment (e.g. MEMORY_FILE_PATH).
// Prints one JSON line of results; on any failed expectation prints
// "upstream.mjs: FAIL: ..." to stderr and exits 1.
import { Client as ClientV1 } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport as HTTPV1 } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { StdioClientTransport as StdioV1 } from '@modelcontextprotocol/sdk/client/stdio.js';
import { CreateMessageRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { Client as ClientV2, StreamableHTTPClientTransport as HTTPV2 } from '@modelcontextprotocol/client';
import { StdioClientTransport as StdioV2 } from '@modelcontextprotocol/client/stdio';

const WATCHDOG_MS = 90_000;

class Failure extends Error {}

function expect(cond, msg, detail) {
  if (!cond) {
    throw new Failure(detail === undefined ? msg : `${msg}: ${JSON.stringify(detail)}`);
  }
}

function usage(msg) {
  console.error(`upstream.mjs: ${msg}`);
  console.error('usage: upstream.mjs <url|stdio> <legacy|modern> <prefix> <scenario> [args...] [-- server command...]');
  process.exit(2);
}

// ---- arguments ----

const argv = process.argv.slice(2);
const dash = argv.indexOf('--');
const serverCmd = dash >= 0 ? argv.slice(dash + 1) : [];
const [target, era, prefix, scenario, ...scenarioArgs] = dash >= 0 ? argv.slice(0, dash) : argv;
if (!target || !era || prefix === undefined || !scenario) usage('missing arguments');
if (era !== 'legacy' && era !== 'modern') usage(`unknown era ${JSON.stringify(era)}`);
const stdio = target === 'stdio';
if (stdio && serverCmd.length === 0) usage('stdio needs the server command after --');
if (!stdio && serverCmd.length > 0) usage('a server command is only for stdio');

const out = { scenario, era, via: stdio ? 'stdio' : 'http' };
const watchdog = setTimeout(() => {
  console.error(`upstream.mjs: FAIL: ${scenario} did not finish within ${WATCHDOG_MS / 1000}s; partial results: ${JSON.stringify(out)}`);
  process.exit(1);
}, WATCHDOG_MS);

// ---- client: one API over the v1 and v2 SDKs ----

async function connect() {
  let client, transport;
  if (era === 'legacy') {
    client = new ClientV1({ name: 'interop-upstream-v1', version: '0.0.0' }, { capabilities: { sampling: {} } });
    // The "LLM" of this client: it answers every sampling request the same
    // way, so a scenario can see the request made it here and back.
    client.setRequestHandler(CreateMessageRequestSchema, async (req) => {
      out.samplingRequests = (out.samplingRequests ?? 0) + 1;
      return { model: 'interop-model', role: 'assistant', content: { type: 'text', text: `sampled by interop: ${req.params.messages?.[0]?.content?.text ?? ''}` } };
    });
    transport = stdio
      ? new StdioV1({ command: serverCmd[0], args: serverCmd.slice(1), env: process.env, stderr: 'inherit' })
      : new HTTPV1(new URL(target), { requestInit: { headers: authHeaders() } });
  } else {
    client = new ClientV2(
      { name: 'interop-upstream-v2', version: '0.0.0' },
      { versionNegotiation: { mode: stdio ? 'legacy' : { pin: '2026-07-28' } } },
    );
    transport = stdio
      ? new StdioV2({ command: serverCmd[0], args: serverCmd.slice(1), env: process.env, stderr: 'inherit' })
      : new HTTPV2(new URL(target), { requestInit: { headers: authHeaders() } });
  }
  await client.connect(transport);
  if (era === 'modern') out.negotiatedEra = client.getProtocolEra();
  if (era === 'legacy' && !stdio) {
    out.protocolVersion = transport.protocolVersion ?? null;
    out.sessionId = transport.sessionId ?? null;
  }
  return {
    // v1's callTool takes a result schema second; v2's takes the options.
    callTool: (params, options) =>
      era === 'legacy' ? client.callTool(params, undefined, options) : client.callTool(params, options),
    listTools: () => client.listTools(),
    listResources: () => client.listResources(),
    readResource: (params) => client.readResource(params),
    listPrompts: () => client.listPrompts(),
    getPrompt: (params) => client.getPrompt(params),
    close: async () => {
      if (era === 'legacy' && !stdio) await transport.terminateSession().catch(() => {});
      await client.close();
    },
  };
}

function authHeaders() {
  const key = process.env.MCPGATE_KEY;
  if (!key) usage('MCPGATE_KEY is not set');
  return { Authorization: `Bearer ${key}` };
}

function text(result) {
  return (result.content ?? [])
    .filter((c) => c.type === 'text')
    .map((c) => c.text)
    .join('\n');
}

// callOK calls a tool and fails unless the result is a success.
async function callOK(c, name, args, options) {
  const r = await c.callTool({ name: prefix + name, arguments: args }, options);
  expect(!r.isError, `${prefix + name} returned isError`, r.content);
  return r;
}

// ---- scenarios ----

async function everything(c) {
  const tools = (await c.listTools()).tools.map((t) => t.name).sort();
  out.tools = tools;
  for (const want of ['echo', 'get-sum', 'get-tiny-image', 'trigger-long-running-operation']) {
    expect(tools.includes(prefix + want), `tools/list lacks ${prefix + want}`, tools);
  }
  // Other upstreams may be mounted beside this one: only this one's items
  // (its tool names with the prefix, its demo:// resources) are checked.

  const msg = `hello from ${era} ${out.via}`;
  out.echo = text(await callOK(c, 'echo', { message: msg }));
  expect(out.echo === `Echo: ${msg}`, 'echo returned unexpected text', out.echo);

  out.sum = text(await callOK(c, 'get-sum', { a: 19, b: 23 }));
  expect(/\b42\b/.test(out.sum), 'get-sum(19, 23) did not say 42', out.sum);

  const resources = (await c.listResources()).resources.filter((r) => r.uri.startsWith('demo://'));
  expect(resources.length > 0, 'resources/list is empty');
  out.resources = resources.length;
  out.resourceNames = resources.slice(0, 3).map((r) => r.name);
  // Names are namespaced like tools; URIs are passed through unchanged.
  expect(resources.every((r) => r.name.startsWith(prefix)), `a resource name lacks the prefix ${JSON.stringify(prefix)}`, resources.map((r) => r.name));
  expect(resources.every((r) => r.uri.startsWith('demo://resource/')), 'a resource URI is not the upstream\'s demo://resource/...', resources.map((r) => r.uri));
  const first = resources[0];
  out.readURI = first.uri;
  const read = await c.readResource({ uri: first.uri });
  expect(read.contents?.length > 0, `resources/read ${first.uri} returned no contents`, read);
  expect(read.contents[0].uri === first.uri, `resources/read ${first.uri} returned another URI`, read.contents[0].uri);
  expect(
    (read.contents[0].text ?? read.contents[0].blob ?? '').length > 0,
    `resources/read ${first.uri} returned empty content`,
  );

  const prompts = (await c.listPrompts()).prompts.filter((p) => p.name.startsWith(prefix));
  out.prompts = prompts.map((p) => p.name).sort();
  expect(prompts.length > 0, 'prompts/list is empty');
  const simple = prompts.find((p) => !(p.arguments ?? []).some((a) => a.required));
  expect(simple, 'no prompt without required arguments', out.prompts);
  expect(simple.name.startsWith(prefix), `prompt ${simple.name} lacks the prefix`);
  out.promptName = simple.name;
  const got = await c.getPrompt({ name: simple.name, arguments: {} });
  out.promptText = got.messages?.[0]?.content?.text ?? null;
  expect(got.messages?.length > 0 && out.promptText, `prompts/get ${simple.name} returned no text message`, got);

  // Progress: 3 steps over 1.5 s; each step notifies.
  const progress = [];
  const long = await callOK(c, 'trigger-long-running-operation', { duration: 1.5, steps: 3 }, {
    onprogress: (p) => progress.push(p),
  });
  out.progress = progress;
  out.longResult = text(long);
  expect(progress.length >= 1, 'no progress notification arrived for trigger-long-running-operation');
  expect(progress.every((p) => p.total === 3), 'progress total is not 3', progress);

  // Cancellation: a 30 s operation, aborted after 500 ms, must reject promptly
  // and leave the connection usable.
  const ac = new AbortController();
  const started = Date.now();
  const pending = c.callTool(
    { name: prefix + 'trigger-long-running-operation', arguments: { duration: 30, steps: 30 } },
    { signal: ac.signal },
  );
  setTimeout(() => ac.abort('interop: cancelled by the test'), 500);
  const settled = await Promise.race([
    pending.then(
      (r) => ({ resolved: r }),
      (e) => ({ rejected: e }),
    ),
    new Promise((resolve) => setTimeout(() => resolve({ timeout: true }), 2500)),
  ]);
  const ms = Date.now() - started;
  expect(!settled.timeout, 'the aborted call did not settle within 2 s of the abort');
  expect(!settled.resolved, 'the aborted call resolved instead of rejecting', settled.resolved);
  expect(ms < 2500, `the aborted call took ${ms} ms to reject`);
  out.cancel = { rejectedAfterMs: ms, error: String(settled.rejected?.message ?? settled.rejected) };

  out.echoAfterCancel = text(await callOK(c, 'echo', { message: 'after cancel' }));
  expect(out.echoAfterCancel === 'Echo: after cancel', 'echo after the cancellation returned unexpected text', out.echoAfterCancel);
}

async function fs(c, dir) {
  if (!dir) usage('fs needs the allowed directory');
  const tools = (await c.listTools()).tools.map((t) => t.name);
  for (const want of ['write_file', 'read_text_file', 'list_directory']) {
    expect(tools.includes(prefix + want), `tools/list lacks ${prefix + want}`, tools.sort());
  }
  const path = `${dir.replace(/\/+$/, '')}/interop-${era}.txt`;
  const content = `written by upstream.mjs (${era}) at ${new Date().toISOString()}\n`;
  out.write = text(await callOK(c, 'write_file', { path, content }));
  out.read = text(await callOK(c, 'read_text_file', { path }));
  expect(out.read === content, 'read_text_file did not return what write_file wrote', { wrote: content, read: out.read });
  out.list = text(await callOK(c, 'list_directory', { path: dir }));
  expect(out.list.includes(`[FILE] interop-${era}.txt`), 'list_directory does not show the written file', out.list);
  // Outside the allowed directory must be refused by the server.
  const outside = await c.callTool({ name: prefix + 'read_text_file', arguments: { path: '/etc/hostname' } });
  out.outsideRefused = !!outside.isError;
  expect(outside.isError, 'read_text_file outside the allowed directory succeeded', text(outside));
}

async function readGraph(c) {
  const r = await callOK(c, 'read_graph', {});
  const graph = r.structuredContent ?? JSON.parse(text(r));
  expect(Array.isArray(graph.entities), 'read_graph returned no entity list', graph);
  return graph.entities.map((e) => e.name).sort();
}

async function memoryWrite(c, name) {
  if (!name) usage('memory-write needs an entity name');
  const r = await callOK(c, 'create_entities', {
    entities: [{ name, entityType: 'note', observations: [`written as ${name}`] }],
  });
  out.created = (r.structuredContent?.entities ?? JSON.parse(text(r))).map((e) => e.name);
  out.entities = await readGraph(c);
  expect(out.entities.includes(name), `read_graph right after create_entities lacks ${name}`, out.entities);
}

async function memoryRead(c) {
  out.entities = await readGraph(c);
}

// sampling (legacy clients): the upstream asks its client (mcpgate) to
// sample in the middle of a call; mcpgate relays the request to this client,
// the one whose call it is, and the answer back.
async function sampling(c) {
  const r = await callOK(c, 'trigger-sampling-request', { prompt: 'relay me', maxTokens: 16 });
  out.sampling = text(r);
  expect(out.samplingRequests === 1, 'the sampling request did not reach this client exactly once', out.samplingRequests);
  expect(out.sampling.includes('sampled by interop') && out.sampling.includes('relay me'), 'the tool result lacks this client\'s sampling answer', out.sampling);
}

const scenarios = {
  sampling,
  everything,
  fs,
  'memory-write': memoryWrite,
  'memory-read': memoryRead,
};

// ---- main ----

const run = scenarios[scenario];
if (!run) usage(`unknown scenario ${JSON.stringify(scenario)}`);
let c;
try {
  c = await connect();
  await run(c, ...scenarioArgs);
  await c.close();
} catch (err) {
  const what = err instanceof Failure ? err.message : `${err?.name ?? 'Error'}: ${err?.message ?? err}${err?.code !== undefined ? ` (code ${err.code})` : ''}`;
  console.error(`upstream.mjs: FAIL: ${scenario} (${era}, ${out.via}): ${what}`);
  if (!(err instanceof Failure) && err?.stack) console.error(err.stack);
  console.error(`upstream.mjs: partial results: ${JSON.stringify(out)}`);
  await c?.close().catch(() => {});
  process.exit(1);
}
clearTimeout(watchdog);
console.log(JSON.stringify(out));
