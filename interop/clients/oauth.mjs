// OAuth discovery by a real third-party client: the TypeScript SDK v2's own
// helpers read mcpgate's 401 challenge, fetch its protected resource
// metadata (RFC 9728) and the authorization server's metadata (RFC 8414),
// then call a tool with a token the Go test minted. A token lacking the
// required scope is refused with 403, whose challenge the SDK parses too.
// Env: MCPGATE_URL, MCPGATE_TOKEN, MCPGATE_LOW_SCOPE_TOKEN.
// Prints one JSON line; exits non-zero on failure.
import {
  Client,
  StreamableHTTPClientTransport,
  discoverAuthorizationServerMetadata,
  discoverOAuthProtectedResourceMetadata,
  extractWWWAuthenticateParams,
} from '@modelcontextprotocol/client';

const url = new URL(process.env.MCPGATE_URL);

// What a client sends first: a request without credentials.
const body = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'tools/list',
  params: {
    _meta: {
      'io.modelcontextprotocol/protocolVersion': '2026-07-28',
      'io.modelcontextprotocol/clientCapabilities': {},
    },
  },
});
const headers = {
  'Content-Type': 'application/json',
  Accept: 'application/json, text/event-stream',
  'MCP-Protocol-Version': '2026-07-28',
  'Mcp-Method': 'tools/list',
};
const unauthorized = await fetch(url, { method: 'POST', headers, body });
const challenge = extractWWWAuthenticateParams(unauthorized);
if (unauthorized.status !== 401 || !challenge.resourceMetadataUrl) {
  throw new Error(`want a 401 naming resource_metadata, got ${unauthorized.status} ${unauthorized.headers.get('www-authenticate')}`);
}
const prm = await discoverOAuthProtectedResourceMetadata(url, { resourceMetadataUrl: challenge.resourceMetadataUrl });
const as = await discoverAuthorizationServerMetadata(prm.authorization_servers[0]);
if (!as) {
  throw new Error(`no authorization server metadata at ${prm.authorization_servers[0]}`);
}

const forbidden = await fetch(url, {
  method: 'POST',
  headers: { ...headers, Authorization: `Bearer ${process.env.MCPGATE_LOW_SCOPE_TOKEN}` },
  body,
});
const forbiddenChallenge = extractWWWAuthenticateParams(forbidden);

const client = new Client(
  { name: 'interop-oauth-discovery', version: '0.0.0' },
  { versionNegotiation: { mode: { pin: '2026-07-28' } } },
);
const transport = new StreamableHTTPClientTransport(url, {
  requestInit: { headers: { Authorization: `Bearer ${process.env.MCPGATE_TOKEN}` } },
});
await client.connect(transport);
const echo = await client.callTool({ name: 'echo', arguments: { message: 'hello with an OAuth token' } });
await client.close();

console.log(JSON.stringify({
  challenge: { resourceMetadataUrl: String(challenge.resourceMetadataUrl), scope: challenge.scope ?? null, error: challenge.error ?? null },
  resource: prm.resource,
  authorizationServers: prm.authorization_servers,
  scopesSupported: prm.scopes_supported ?? [],
  asIssuer: as.issuer,
  asJwksUri: as.jwks_uri ?? null,
  forbidden: {
    status: forbidden.status,
    error: forbiddenChallenge.error ?? null,
    scope: forbiddenChallenge.scope ?? null,
    resourceMetadataUrl: forbiddenChallenge.resourceMetadataUrl ? String(forbiddenChallenge.resourceMetadataUrl) : null,
  },
  echo: echo.content?.[0]?.text ?? null,
}));
