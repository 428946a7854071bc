#!/usr/bin/env node
// nbauth demo provider: a local, Auth0-compatible OpenID provider (panva's oidc-provider)
// plus a small protected API, for tests and demos. Binds 127.0.0.1 only.
//
// stdout carries exactly one line: the JSON "ready line". Everything else goes to stderr,
// and nothing that is logged ever contains a token, a code or a secret.

import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';

// oidc-provider prints NOTICEs with console.info (stdout). Send every console method to
// stderr *before* it is imported, so that stdout only ever carries the ready line.
for (const method of ['log', 'info', 'debug']) {
  // eslint-disable-next-line no-console
  console[method] = (...args) => console.error(...args);
}

const { default: Provider, errors } = await import('oidc-provider');
const jose = await import('jose');

// ---------------------------------------------------------------------------------------------
// Constants
// ---------------------------------------------------------------------------------------------

const AUDIENCE = 'https://api.nbauth.test/';
const API_SCOPE = 'read:messages';
// A second API, so that logins for two audiences can be tested side by side.
const SECOND_AUDIENCE = 'https://reports.nbauth.test/';
const SECOND_API_SCOPE = 'read:reports';
const CLIENT_ID = 'nbauth-demo';
const EXACT_CLIENT_ID = 'nbauth-exact';
const M2M_CLIENT_ID = 'nbauth-m2m';
const M2M_CLIENT_SECRET = 'nbauth-m2m-demo-secret-not-for-production';
const DEFAULT_EXACT_PORTS = [8765, 8766, 8767];
const PASSWORD = 'nbauth-demo';
const MAX_FORM_BYTES = 16 * 1024;

const USERS = [
  { sub: 'auth0|demo', email: 'demo@example.com', name: 'Demo User' },
  { sub: 'auth0|alice', email: 'alice@example.com', name: 'Alice' },
  { sub: 'auth0|bob', email: 'bob@example.com', name: 'Bob' },
];
const USERS_BY_SUB = new Map(USERS.map((u) => [u.sub, u]));
const USERS_BY_EMAIL = new Map(USERS.map((u) => [u.email, u]));
const STARTED_AT = Math.floor(Date.now() / 1000);

const SCOPE_DESCRIPTIONS = {
  openid: 'Sign you in',
  profile: 'Your name',
  email: 'Your email address',
  offline_access: 'Stay signed in (a refresh token)',
  [API_SCOPE]: 'Read messages from the nbauth demo API',
  [SECOND_API_SCOPE]: 'Read reports from the nbauth demo reports API',
};

// ---------------------------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------------------------

function usage(message) {
  if (message) console.error(`error: ${message}`);
  console.error(`usage: node server.mjs [--port N] [--api-port N] [--access-token-ttl S]
       [--id-token-ttl S] [--refresh-token-ttl S] [--device-code-ttl S]
       [--device-interval S] [--device-min-poll S] [--exact-ports P1,P2,...]
       [--redirect-uri URL]...
       [--exit-on-stdin-close]`);
  process.exit(2);
}

function parseArgs(argv) {
  const opts = {
    port: 0,
    apiPort: 0,
    accessTokenTtl: 3600,
    idTokenTtl: 3600,
    refreshTokenTtl: 86400,
    deviceCodeTtl: 600,
    deviceInterval: 5,
    deviceMinPoll: 0,
    exactPorts: DEFAULT_EXACT_PORTS,
    extraRedirects: [],
    exitOnStdinClose: false,
  };
  const numeric = {
    '--port': ['port', 0, 65535],
    '--api-port': ['apiPort', 0, 65535],
    '--access-token-ttl': ['accessTokenTtl', 1, 10 * 365 * 86400],
    '--id-token-ttl': ['idTokenTtl', 1, 10 * 365 * 86400],
    '--refresh-token-ttl': ['refreshTokenTtl', 1, 10 * 365 * 86400],
    '--device-code-ttl': ['deviceCodeTtl', 1, 86400],
    '--device-interval': ['deviceInterval', 1, 60],
    '--device-min-poll': ['deviceMinPoll', 0, 600],
  };
  for (let i = 0; i < argv.length; i += 1) {
    let arg = argv[i];
    let value;
    if (arg.startsWith('--') && arg.includes('=')) {
      [arg, value] = [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)];
    }
    if (arg === '--help' || arg === '-h') usage();
    if (arg === '--exit-on-stdin-close') {
      opts.exitOnStdinClose = true;
      continue;
    }
    if (!(arg in numeric) && arg !== '--exact-ports' && arg !== '--redirect-uri') {
      usage(`unknown option ${arg}`);
    }
    if (value === undefined) {
      i += 1;
      if (i >= argv.length) usage(`${arg} needs a value`);
      value = argv[i];
    }
    if (arg === '--redirect-uri') {
      // Another exact redirect URI for the exact client (e.g. a JupyterHub's hub-wide callback).
      let url;
      try { url = new URL(value); } catch { usage('--redirect-uri needs an absolute URL'); }
      if (!['http:', 'https:'].includes(url.protocol)) usage('--redirect-uri needs http(s)');
      opts.extraRedirects.push(value);
      continue;
    }
    if (arg === '--exact-ports') {
      const ports = value.split(',').map((p) => p.trim()).filter(Boolean).map(Number);
      if (!ports.length || ports.some((p) => !Number.isInteger(p) || p < 1 || p > 65535)) {
        usage('--exact-ports needs a comma-separated list of ports (1-65535)');
      }
      opts.exactPorts = ports;
      continue;
    }
    const [key, min, max] = numeric[arg];
    const n = Number(value);
    if (!/^\d+$/.test(value) || !Number.isInteger(n) || n < min || n > max) {
      usage(`${arg} needs an integer between ${min} and ${max}`);
    }
    opts[key] = n;
  }
  return opts;
}

const opts = parseArgs(process.argv.slice(2));

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

function log(message) {
  console.error(`[nbauth-provider] ${new Date().toISOString()} ${message}`);
}

function escapeHtml(value) {
  return String(value ?? '')
    .replaceAll('&', '&amp;')
    .replaceAll('<', '&lt;')
    .replaceAll('>', '&gt;')
    .replaceAll('"', '&quot;')
    .replaceAll("'", '&#39;');
}

const STYLE = `
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;background:#f4f5f7;color:#1f2328;margin:0;padding:2rem 1rem}
main{max-width:26rem;margin:0 auto;background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:1.5rem 2rem}
h1{font-size:1.4rem;margin:0 0 1rem}
label{display:block;font-weight:600;margin:.75rem 0 .25rem}
input[type=text],input[type=password]{width:100%;box-sizing:border-box;padding:.5rem;font-size:1rem;border:1px solid #8c959f;border-radius:4px}
button{font-size:1rem;padding:.5rem 1rem;border-radius:4px;border:1px solid #1f6feb;background:#1f6feb;color:#fff;cursor:pointer;margin-top:1rem}
button.secondary{background:#fff;color:#1f2328;border-color:#8c959f}
.actions{display:flex;gap:.75rem}.actions form{margin:0}
.error{color:#b42318;background:#fef3f2;border:1px solid #fda29b;padding:.5rem;border-radius:4px}
.hint{color:#57606a;font-size:.85rem;margin-top:1.5rem}
code{font-size:1.1rem}
`;

function page(title, body) {
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)} - nbauth demo provider</title>
<style>${STYLE}</style>
</head>
<body>
<main>
${body}
</main>
</body>
</html>
`;
}

function clientDisplay(client) {
  if (!client) return 'an application';
  return client.clientName || client.clientId;
}

// ---------------------------------------------------------------------------------------------
// Bind the ports first, then build the provider with the real issuer.
// ---------------------------------------------------------------------------------------------

let providerHandler = (req, res) => {
  res.statusCode = 503;
  res.end('starting');
};
const providerServer = http.createServer((req, res) => providerHandler(req, res));
let apiHandler = (req, res) => {
  res.statusCode = 503;
  res.end('starting');
};
const apiServer = http.createServer((req, res) => apiHandler(req, res));

function listen(server, port, label) {
  return new Promise((resolve, reject) => {
    const onError = (err) => reject(new Error(`${label}: cannot listen on 127.0.0.1:${port}: ${err.code || err.message}`));
    server.once('error', onError);
    server.listen({ port, host: '127.0.0.1', exclusive: true }, () => {
      server.off('error', onError);
      resolve(server.address().port);
    });
  });
}

let port;
let apiPort;
try {
  port = await listen(providerServer, opts.port, 'provider');
  apiPort = await listen(apiServer, opts.apiPort, 'api');
} catch (err) {
  log(err.message);
  process.exit(1);
}

const issuer = `http://127.0.0.1:${port}/`;
const apiUrl = `http://127.0.0.1:${apiPort}/api/private`;

// ---------------------------------------------------------------------------------------------
// Signing key (new at every start, like oidc-provider's default, but with a kid we control)
// ---------------------------------------------------------------------------------------------

const { privateKey } = await jose.generateKeyPair('RS256', { modulusLength: 2048, extractable: true });
const privateJwk = await jose.exportJWK(privateKey);
privateJwk.kid = await jose.calculateJwkThumbprint(privateJwk);
privateJwk.alg = 'RS256';
privateJwk.use = 'sig';

// ---------------------------------------------------------------------------------------------
// Provider configuration
// ---------------------------------------------------------------------------------------------

function findUserByEmail(email) {
  return USERS_BY_EMAIL.get(String(email || '').trim().toLowerCase());
}

function accountFor(user) {
  return {
    accountId: user.sub,
    async claims() {
      return {
        sub: user.sub,
        name: user.name,
        nickname: user.email.split('@')[0],
        email: user.email,
        email_verified: true,
        updated_at: STARTED_AT,
      };
    },
  };
}

function audienceFrom(ctx) {
  // Auth0's `audience` parameter: a declared extraParam at /authorize and /oauth/device/code;
  // at /oauth/token (client_credentials) it is not a recognised parameter, so read the body.
  const fromParams = ctx.oidc?.params?.audience;
  if (typeof fromParams === 'string' && fromParams) return fromParams;
  const fromBody = ctx.oidc?.body?.audience;
  if (typeof fromBody === 'string' && fromBody) return fromBody;
  return undefined;
}

const exactRedirects = [
  ...opts.exactPorts.map((p) => `http://127.0.0.1:${p}/callback`),
  ...opts.extraRedirects,
];
const exactLogoutRedirects = opts.exactPorts.map((p) => `http://127.0.0.1:${p}/logged-out`);

const configuration = {
  clients: [
    {
      client_id: CLIENT_ID,
      client_name: 'nbauth demo (native)',
      application_type: 'native',
      token_endpoint_auth_method: 'none',
      redirect_uris: ['http://127.0.0.1/callback', 'http://localhost/callback'],
      post_logout_redirect_uris: ['http://127.0.0.1/logged-out', 'http://localhost/logged-out'],
      grant_types: ['authorization_code', 'refresh_token', 'urn:ietf:params:oauth:grant-type:device_code'],
      response_types: ['code'],
    },
    {
      client_id: EXACT_CLIENT_ID,
      client_name: 'nbauth demo (exact callback URLs)',
      // 'web' clients get exact redirect_uri matching, port included (Auth0's rule).
      application_type: 'web',
      token_endpoint_auth_method: 'none',
      redirect_uris: exactRedirects,
      post_logout_redirect_uris: exactLogoutRedirects,
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
    },
    {
      client_id: M2M_CLIENT_ID,
      client_name: 'nbauth demo (machine to machine)',
      client_secret: M2M_CLIENT_SECRET,
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
    },
  ],
  clientAuthMethods: ['none', 'client_secret_basic', 'client_secret_post'],
  jwks: { keys: [privateJwk] },
  cookies: {
    keys: [randomBytes(32).toString('hex')],
    long: { httpOnly: true, sameSite: 'lax', secure: false },
    short: { httpOnly: true, sameSite: 'lax', secure: false },
  },
  routes: {
    authorization: '/authorize',
    token: '/oauth/token',
    userinfo: '/userinfo',
    jwks: '/.well-known/jwks.json',
    device_authorization: '/oauth/device/code',
    code_verification: '/activate',
    revocation: '/oauth/revoke',
    end_session: '/v2/logout',
    introspection: '/oauth/introspect',
    pushed_authorization_request: '/oauth/par',
  },
  scopes: ['openid', 'profile', 'email', 'offline_access'],
  claims: {
    openid: ['sub'],
    profile: ['name', 'nickname', 'updated_at'],
    email: ['email', 'email_verified'],
  },
  // Auth0 puts the profile/email claims straight into the ID token.
  conformIdTokenClaims: false,
  extraParams: ['audience'],
  // Client secrets are compared for equality only (client_secret_basic/post) here.
  pkce: { required: (ctx, client) => client.clientAuthMethod === 'none' },
  rotateRefreshToken: true,
  async findAccount(ctx, sub) {
    const user = USERS_BY_SUB.get(sub);
    return user ? accountFor(user) : undefined;
  },
  async extraTokenClaims(ctx, token) {
    // Auth0's JWT access tokens carry azp; oidc-provider already sets client_id.
    if (token.clientId) return { azp: token.clientId };
    return undefined;
  },
  ttl: {
    AccessToken: opts.accessTokenTtl,
    AuthorizationCode: 60,
    ClientCredentials: opts.accessTokenTtl,
    DeviceCode: opts.deviceCodeTtl,
    IdToken: opts.idTokenTtl,
    RefreshToken: opts.refreshTokenTtl,
    Interaction: 3600,
    Session: 14 * 24 * 3600,
    Grant: Math.max(opts.refreshTokenTtl, 14 * 24 * 3600),
  },
  interactions: {
    url: (ctx, interaction) => `/interaction/${interaction.uid}`,
  },
  renderError(ctx, out) {
    ctx.type = 'html';
    const rows = Object.entries(out)
      .map(([k, v]) => `<p><strong>${escapeHtml(k)}</strong>: ${escapeHtml(v)}</p>`)
      .join('\n');
    ctx.body = page('Error', `<h1>Something went wrong</h1>\n${rows}`);
  },
  features: {
    devInteractions: { enabled: false },
    revocation: { enabled: true },
    clientCredentials: { enabled: true },
    introspection: { enabled: false },
    userinfo: { enabled: true },
    rpInitiatedLogout: {
      enabled: true,
      async logoutSource(ctx, form) {
        // `form` is oidc-provider's <form id="op.logoutForm"> with a hidden xsrf input.
        const withButtons = form.replace(
          '</form>',
          '<div class="actions"><button type="submit" name="logout" value="yes">Sign out</button>'
            + '<button type="submit" class="secondary">Stay signed in</button></div></form>',
        );
        ctx.type = 'html';
        ctx.body = page('Sign out', `<h1>Sign out</h1>\n<p>Do you want to sign out of the nbauth demo provider?</p>\n${withButtons}`);
      },
      async postLogoutSuccessSource(ctx) {
        ctx.type = 'html';
        ctx.body = page('Signed out', '<h1>Signed out</h1>\n<p>You have been signed out. You can close this page.</p>');
      },
    },
    deviceFlow: {
      enabled: true,
      charset: 'base-20',
      mask: '****-****',
      async userCodeInputSource(ctx, form, out, err) {
        let message = '<p>Enter the code displayed on your device.</p>';
        if (err && (err.userCode || err.name === 'NoCodeError')) {
          message = '<p class="error" role="alert">The code you entered is incorrect. Try again.</p>';
        } else if (err && err.name === 'AbortedError') {
          message = '<p class="error" role="alert">The sign-in request was cancelled.</p>';
        } else if (err) {
          message = '<p class="error" role="alert">There was an error processing your request.</p>';
        }
        // `form` is <form id="op.deviceInputForm" method="post" action=".../activate"> with
        // hidden `xsrf` and text `user_code` inputs.
        const withButton = form.replace('</form>', '<button type="submit">Continue</button></form>');
        ctx.type = 'html';
        ctx.body = page('Activate device', `<h1>Activate a device</h1>\n${message}\n${withButton}`);
      },
      async userCodeConfirmSource(ctx, form, client, deviceInfo, userCode) {
        // `form` is <form id="op.deviceConfirmForm"> with hidden xsrf, user_code, confirm=yes.
        const withButtons = form.replace(
          '</form>',
          '<div class="actions"><button type="submit">Continue</button>'
            + '<button type="submit" class="secondary" name="abort" value="yes">Cancel</button></div></form>',
        );
        ctx.type = 'html';
        ctx.body = page('Confirm device', `<h1>Confirm the device</h1>
<p><strong>${escapeHtml(clientDisplay(client))}</strong> is asking to sign in.</p>
<p>Check that this code is shown on your device: <code>${escapeHtml(userCode)}</code></p>
${withButtons}`);
      },
      async successSource(ctx) {
        ctx.type = 'html';
        ctx.body = page('Device activated', `<h1>Device activated</h1>
<p>Sign-in with ${escapeHtml(clientDisplay(ctx.oidc.client))} was successful. You can close this page.</p>`);
      },
    },
    resourceIndicators: {
      enabled: true,
      async defaultResource(ctx, client, oneOf) {
        if (oneOf) return Array.isArray(oneOf) && oneOf.length === 1 ? oneOf[0] : oneOf;
        return audienceFrom(ctx);
      },
      async useGrantedResource() {
        return true;
      },
      async getResourceServerInfo(ctx, resourceIndicator) {
        if (resourceIndicator === AUDIENCE) {
          return {
            scope: API_SCOPE,
            audience: AUDIENCE,
            accessTokenTTL: opts.accessTokenTtl,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'RS256' } },
          };
        }
        if (resourceIndicator === SECOND_AUDIENCE) {
          return {
            scope: SECOND_API_SCOPE,
            audience: SECOND_AUDIENCE,
            accessTokenTTL: opts.accessTokenTtl,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'RS256' } },
          };
        }
        throw new errors.InvalidTarget('unknown audience');
      },
    },
  },
};

const provider = new Provider(issuer, configuration);

for (const event of [
  'authorization.error', 'grant.error', 'userinfo.error', 'revocation.error',
  'device_authorization.error', 'code_verification.error', 'end_session.error',
  'backchannel.error', 'jwks.error', 'discovery.error',
]) {
  provider.on(event, (ctx, err) => {
    log(`${event}: ${err.error || err.name}${err.error_description ? ` (${err.error_description})` : ''}`);
  });
}
provider.on('server_error', (ctx, err) => {
  log(`server_error: ${err.name}: ${err.message}`);
});
provider.on('grant.success', (ctx) => {
  log(`token issued: grant_type=${ctx.oidc.params?.grant_type} client=${ctx.oidc.client?.clientId}`);
});
provider.on('grant.revoked', (ctx, grantId) => {
  log(`grant revoked (client=${ctx.oidc.client?.clientId})`);
  void grantId;
});

// ---------------------------------------------------------------------------------------------
// Middleware in front of oidc-provider
// ---------------------------------------------------------------------------------------------

// Request log: method, path (never the query string: it can hold codes) and status.
provider.use(async (ctx, next) => {
  const started = Date.now();
  try {
    await next();
  } finally {
    log(`${ctx.method} ${ctx.path} -> ${ctx.status} (${Date.now() - started} ms)`);
  }
});

// Auth0 compatibility rewrites of query parameters.
provider.use(async (ctx, next) => {
  if (ctx.method === 'GET' && ctx.path === '/authorize') {
    // oidc-provider silently drops offline_access unless prompt includes consent; Auth0 issues
    // a refresh token for offline_access without it. Add prompt=consent (native clients see
    // the consent page every time anyway, see README).
    const q = new URLSearchParams(ctx.querystring);
    const scopes = (q.get('scope') || '').split(' ');
    const promptValues = q.getAll('prompt');
    if (scopes.includes('offline_access') && promptValues.length <= 1) {
      const prompts = new Set((promptValues[0] || '').split(' ').filter(Boolean));
      if (!prompts.has('none') && !prompts.has('consent')) {
        prompts.add('consent');
        q.set('prompt', [...prompts].join(' '));
        ctx.querystring = q.toString();
      }
    }
  } else if (ctx.method === 'GET' && ctx.path === '/v2/logout') {
    // Auth0's /v2/logout?client_id=...&returnTo=... -> post_logout_redirect_uri.
    const q = new URLSearchParams(ctx.querystring);
    if (q.has('returnTo') && !q.has('post_logout_redirect_uri')) {
      q.set('post_logout_redirect_uri', q.get('returnTo'));
      q.delete('returnTo');
      ctx.querystring = q.toString();
    }
  }
  await next();
  if (ctx.method === 'POST' && ctx.path === '/oauth/device/code' && ctx.status === 200
      && ctx.body && typeof ctx.body === 'object' && ctx.body.interval === undefined) {
    // Auth0 tells the device how often to poll; oidc-provider omits it (RFC 8628 default 5).
    ctx.body.interval = opts.deviceInterval;
  }
  if (ctx.method === 'POST' && ctx.path === '/oauth/token' && ctx.status === 400
      && ctx.body?.error === 'authorization_pending' && opts.deviceMinPoll > 0) {
    // RFC 8628 §3.5: a device polling faster than allowed gets slow_down, and must add 5 s to
    // its interval for this and every later poll. Enforced per device code, Auth0-style.
    const code = ctx.oidc?.params?.device_code;
    if (typeof code === 'string' && code) {
      const key = createHash('sha256').update(code).digest('hex');
      const now = Date.now();
      const seen = devicePolls.get(key) || { last: 0 };
      if (seen.last && now - seen.last < opts.deviceMinPoll * 1000) {
        ctx.body = { error: 'slow_down', error_description: 'you are polling too quickly' };
        log('device poll: slow_down');
      } else {
        log('device poll: authorization_pending');
      }
      seen.last = now;
      devicePolls.set(key, seen);
    }
  }
  if (ctx.method === 'POST' && ctx.path === '/oauth/token' && ctx.status === 200
      && ctx.body && typeof ctx.body === 'object' && typeof ctx.body.scope === 'string') {
    // With an audience, oidc-provider's token response lists only the API's scopes (the access
    // token's); Auth0 lists every granted scope ("openid profile email offline_access read:...").
    const entities = ctx.oidc?.entities || {};
    const source = entities.RefreshToken || entities.AuthorizationCode || entities.DeviceCode;
    const requested = ctx.oidc?.params?.scope;
    const granted = typeof requested === 'string' && requested ? requested : source?.scope;
    if (typeof granted === 'string' && granted) ctx.body.scope = granted;
  }
});

const devicePolls = new Map(); // sha256(device_code) -> { last: time of the last poll (ms) }

async function readForm(ctx) {
  const type = (ctx.get('content-type') || '').split(';')[0].trim().toLowerCase();
  const chunks = [];
  let size = 0;
  for await (const chunk of ctx.req) {
    size += chunk.length;
    if (size > MAX_FORM_BYTES) {
      const err = new Error('form body too large');
      err.status = 413;
      throw err;
    }
    chunks.push(chunk);
  }
  if (size && type !== 'application/x-www-form-urlencoded') {
    const err = new Error('form body must be application/x-www-form-urlencoded');
    err.status = 415;
    throw err;
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

function loginPage(uid, client, { error, username } = {}) {
  const userList = USERS.map((u) => `<code>${escapeHtml(u.email)}</code>`).join(', ');
  return page('Sign in', `<h1>Sign in</h1>
<p>to continue to <strong>${escapeHtml(clientDisplay(client))}</strong></p>
${error ? `<p class="error" role="alert">${escapeHtml(error)}</p>` : ''}
<form method="post" action="/interaction/${escapeHtml(uid)}/login" autocomplete="off">
<label for="username">Email</label>
<input id="username" name="username" type="text" inputmode="email" autocomplete="username" value="${escapeHtml(username || '')}" required autofocus>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button>
</form>
<p class="hint">Demo provider. Users: ${userList}; password <code>${escapeHtml(PASSWORD)}</code>.</p>`);
}

function consentPage(uid, client, details) {
  const { params, session, prompt } = details;
  const user = USERS_BY_SUB.get(session?.accountId);
  const requested = String(params.scope || '').split(' ').filter(Boolean);
  const items = requested
    .map((s) => `<li><code>${escapeHtml(s)}</code>${SCOPE_DESCRIPTIONS[s] ? ` - ${escapeHtml(SCOPE_DESCRIPTIONS[s])}` : ''}</li>`)
    .join('\n');
  const audience = params.audience || params.resource;
  const audiences = Array.isArray(audience) ? audience : (audience ? [audience] : []);
  const missing = [
    ...(prompt.details?.missingOIDCScope || []),
    ...Object.values(prompt.details?.missingResourceScopes || {}).flat(),
  ];
  return page('Authorize', `<h1>Authorize ${escapeHtml(clientDisplay(client))}</h1>
${user ? `<p>Signed in as <strong>${escapeHtml(user.email)}</strong></p>` : ''}
<p><strong>${escapeHtml(clientDisplay(client))}</strong> (<code>${escapeHtml(client?.clientId)}</code>) is requesting:</p>
<ul>
${items || '<li>no scopes</li>'}
</ul>
${audiences.map((a) => `<p>Access to the API <code>${escapeHtml(a)}</code></p>`).join('\n')}
${missing.length ? `<p class="hint">Not granted before: ${missing.map((m) => `<code>${escapeHtml(m)}</code>`).join(', ')}</p>` : ''}
<div class="actions">
<form method="post" action="/interaction/${escapeHtml(uid)}/confirm"><button type="submit">Allow</button></form>
<form method="post" action="/interaction/${escapeHtml(uid)}/abort"><button type="submit" class="secondary">Deny</button></form>
</div>`);
}

function errorPage(ctx, status, title, message) {
  ctx.status = status;
  ctx.type = 'html';
  ctx.set('Cache-Control', 'no-store');
  ctx.body = page(title, `<h1>${escapeHtml(title)}</h1>\n<p>${escapeHtml(message)}</p>`);
}

const INTERACTION_PATH = /^\/interaction\/([A-Za-z0-9_-]{1,128})(?:\/(login|confirm|abort))?\/?$/;

provider.use(async (ctx, next) => {
  const match = INTERACTION_PATH.exec(ctx.path);
  if (!match) {
    await next();
    return;
  }
  const [, uid, action] = match;
  ctx.set('Cache-Control', 'no-store');
  ctx.set('X-Frame-Options', 'DENY');
  ctx.set('Content-Security-Policy', "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'");
  try {
    if ((action && ctx.method !== 'POST') || (!action && ctx.method !== 'GET')) {
      errorPage(ctx, 405, 'Method not allowed', 'This page does not accept this kind of request.');
      return;
    }
    let details;
    try {
      details = await provider.interactionDetails(ctx.req, ctx.res);
    } catch (err) {
      if (err instanceof errors.SessionNotFound) {
        errorPage(ctx, 400, 'Sign-in expired', 'This sign-in request is unknown or has expired. Start again from the application.');
        return;
      }
      throw err;
    }
    if (details.uid !== uid) {
      errorPage(ctx, 400, 'Sign-in expired', 'This sign-in request does not match this browser session. Start again from the application.');
      return;
    }
    const client = await provider.Client.find(details.params.client_id);
    const promptName = details.prompt.name;

    if (!action) {
      ctx.type = 'html';
      if (promptName === 'login') {
        ctx.body = loginPage(uid, client, { username: details.params.login_hint });
      } else if (promptName === 'consent') {
        ctx.body = consentPage(uid, client, details);
      } else {
        errorPage(ctx, 400, 'Unsupported request', `Unsupported interaction: ${promptName}`);
      }
      return;
    }

    const form = await readForm(ctx);

    if (action === 'abort') {
      const returnTo = await provider.interactionResult(ctx.req, ctx.res, {
        error: 'access_denied',
        error_description: 'End-User aborted interaction',
      }, { mergeWithLastSubmission: false });
      log('interaction denied by the user');
      ctx.status = 303;
      ctx.redirect(returnTo);
      return;
    }

    if (action === 'login') {
      if (promptName !== 'login') {
        errorPage(ctx, 400, 'Unexpected step', 'This sign-in request is not waiting for a login.');
        return;
      }
      const username = form.get('username') || '';
      const user = findUserByEmail(username);
      if (!user || form.get('password') !== PASSWORD) {
        log('login failed: wrong email or password');
        ctx.type = 'html';
        ctx.body = loginPage(uid, client, { error: 'Wrong email or password.', username });
        return;
      }
      const returnTo = await provider.interactionResult(ctx.req, ctx.res, {
        login: { accountId: user.sub, amr: ['pwd'] },
      }, { mergeWithLastSubmission: false });
      log(`login ok: ${user.sub}`);
      ctx.status = 303;
      ctx.redirect(returnTo);
      return;
    }

    // action === 'confirm'
    if (promptName !== 'consent') {
      errorPage(ctx, 400, 'Unexpected step', 'This sign-in request is not waiting for a consent.');
      return;
    }
    const { prompt: { details: promptDetails }, params, session } = details;
    let grant;
    if (details.grantId) {
      grant = await provider.Grant.find(details.grantId);
    }
    if (!grant) {
      grant = new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    }
    if (promptDetails.missingOIDCScope) {
      grant.addOIDCScope(promptDetails.missingOIDCScope.join(' '));
    }
    if (promptDetails.missingOIDCClaims) {
      grant.addOIDCClaims(promptDetails.missingOIDCClaims);
    }
    if (promptDetails.missingResourceScopes) {
      for (const [indicator, scopes] of Object.entries(promptDetails.missingResourceScopes)) {
        grant.addResourceScope(indicator, scopes.join(' '));
      }
    }
    const grantId = await grant.save();
    const consent = {};
    if (!details.grantId) consent.grantId = grantId;
    const returnTo = await provider.interactionResult(ctx.req, ctx.res, { consent }, { mergeWithLastSubmission: true });
    log(`consent given: ${session.accountId} -> ${params.client_id}`);
    ctx.status = 303;
    ctx.redirect(returnTo);
  } catch (err) {
    const status = err.status && err.status >= 400 && err.status < 500 ? err.status : 500;
    log(`interaction error: ${err.name}: ${err.message}`);
    errorPage(ctx, status, 'Something went wrong', status === 500 ? 'Internal error while handling the sign-in.' : err.message);
  }
});

providerHandler = provider.callback();

// ---------------------------------------------------------------------------------------------
// The protected API
// ---------------------------------------------------------------------------------------------

const remoteJwks = jose.createRemoteJWKSet(new URL('.well-known/jwks.json', issuer), {
  timeoutDuration: 5000,
  cooldownDuration: 1000,
});

function sendJson(res, status, body, headers = {}) {
  const data = JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(data),
    'Cache-Control': 'no-store',
    ...headers,
  });
  res.end(data);
}

function unauthorized(res, description) {
  sendJson(res, 401, { error: 'invalid_token', error_description: description }, {
    'WWW-Authenticate': 'Bearer error="invalid_token"',
  });
}

async function handleApi(req, res) {
  const url = new URL(req.url, `http://127.0.0.1:${apiPort}`);
  if (!['/api/private', '/api/public', '/api/reports'].includes(url.pathname)) {
    sendJson(res, 404, { error: 'not_found' });
    return 404;
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    sendJson(res, 405, { error: 'method_not_allowed' }, { Allow: 'GET' });
    return 405;
  }
  if (url.pathname === '/api/public') {
    sendJson(res, 200, { message: 'Hello from the nbauth demo API (public endpoint, no token needed)' });
    return 200;
  }
  const header = req.headers.authorization || '';
  const m = /^Bearer[ ]+([A-Za-z0-9._~+/=-]+)\s*$/i.exec(header);
  if (!m) {
    unauthorized(res, header ? 'malformed Authorization header' : 'missing Bearer token');
    return 401;
  }
  try {
    const { payload } = await jose.jwtVerify(m[1], remoteJwks, {
      issuer,
      audience: url.pathname === '/api/reports' ? SECOND_AUDIENCE : AUDIENCE,
      algorithms: ['RS256'],
      requiredClaims: ['exp', 'sub'],
    });
    sendJson(res, 200, {
      message: url.pathname === '/api/reports' ? 'Hello from the nbauth demo reports API'
        : 'Hello from the nbauth demo API',
      sub: payload.sub,
      scope: payload.scope ?? '',
    });
    return 200;
  } catch (err) {
    let description = 'invalid token';
    if (err?.code === 'ERR_JWT_EXPIRED') description = 'token expired';
    else if (err?.code === 'ERR_JWT_CLAIM_VALIDATION_FAILED') description = `bad claim: ${err.claim}`;
    else if (err?.code === 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED') description = 'bad signature';
    else if (err?.code === 'ERR_JWKS_NO_MATCHING_KEY') description = 'unknown signing key';
    else if (err?.code === 'ERR_JWS_INVALID' || err?.code === 'ERR_JWT_INVALID') description = 'not a valid JWT';
    else if (err?.code === 'ERR_JOSE_ALG_NOT_ALLOWED') description = 'algorithm not allowed';
    unauthorized(res, description);
    return 401;
  }
}

apiHandler = (req, res) => {
  const started = Date.now();
  const path = (req.url || '').split('?')[0];
  handleApi(req, res)
    .then((status) => log(`api ${req.method} ${path} -> ${status} (${Date.now() - started} ms)`))
    .catch((err) => {
      log(`api error: ${err.name}: ${err.message}`);
      if (!res.headersSent) sendJson(res, 500, { error: 'server_error' });
      else res.end();
    });
};

// ---------------------------------------------------------------------------------------------
// Ready line, shutdown
// ---------------------------------------------------------------------------------------------

let stopping = false;
function shutdown(reason) {
  if (stopping) return;
  stopping = true;
  log(`stopping (${reason})`);
  const force = setTimeout(() => process.exit(0), 2000);
  force.unref();
  let open = 2;
  const done = () => {
    open -= 1;
    if (open === 0) process.exit(0);
  };
  for (const server of [providerServer, apiServer]) {
    server.close(done);
    server.closeAllConnections?.();
  }
}

process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
process.on('SIGHUP', () => shutdown('SIGHUP'));

if (opts.exitOnStdinClose) {
  process.stdin.on('end', () => shutdown('stdin closed'));
  process.stdin.on('close', () => shutdown('stdin closed'));
  process.stdin.on('error', () => shutdown('stdin error'));
  process.stdin.on('data', () => {});
  process.stdin.resume();
}

const ready = {
  issuer,
  api_url: apiUrl,
  audience: AUDIENCE,
  client_id: CLIENT_ID,
  m2m_client_id: M2M_CLIENT_ID,
  m2m_client_secret: M2M_CLIENT_SECRET,
  exact_client_id: EXACT_CLIENT_ID,
  exact_ports: opts.exactPorts,
  second_audience: SECOND_AUDIENCE,
};
// Python-json-style separators: {"issuer": "...", "exact_ports": [8765, 8766, 8767]}
const readyLine = `{${Object.entries(ready)
  .map(([k, v]) => `${JSON.stringify(k)}: ${Array.isArray(v) ? `[${v.map((x) => JSON.stringify(x)).join(', ')}]` : JSON.stringify(v)}`)
  .join(', ')}}`;
process.stdout.write(`${readyLine}\n`);
log(`ready: issuer ${issuer}, api ${apiUrl}`);
