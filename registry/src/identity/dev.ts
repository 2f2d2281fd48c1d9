import { createHmac } from 'node:crypto';
import { deriveSigningJwk } from '../crypto/derived-key.ts';
import express, { type Request, type Response, type NextFunction } from 'express';
import Provider, { errors, type Configuration as ProviderConfiguration, type KoaContextWithOIDC } from 'oidc-provider';
import * as client from 'openid-client';
import type { Logger } from '../log.ts';
import type { RecordStore } from '../store/index.ts';
import { recordStoreAdapter, type AdapterSealer, type OidcStoreEntry } from './oidc-adapter.ts';
import { authenticateDemoUser, type DemoUser } from '../config/dev-users.ts';
import { OidcLogin } from './oidc-login.ts';
import type { IdentityProvider, LoginChallenge } from './provider.ts';

/** Where the built-in IdP is mounted inside the registry (and so behind nginx). */
export const DEV_IDP_PATH = '/idp';
const CLIENT_ID = 'mcp-gateway-registry';
/** The dev IdP's machine client (client-credentials grant); scopes come from the mapping file. */
export const DEV_MACHINE_CLIENT_ID = 'mcp-dev-machine';
/** The audience the dev IdP puts in access tokens for the gateway. */
export const DEV_AUDIENCE = 'mcp-gateway';
const SCOPE = 'openid profile email groups';

export interface DevProviderOptions {
  readonly publicUrl: string;
  /** The registry's own loopback URL; the code exchange goes there, never out and back in. */
  readonly internalUrl: () => string;
  readonly secretKey: string;
  readonly users: readonly DemoUser[];
  /** Where the IdP keeps its sessions, codes, grants and refresh tokens, so they survive a restart. */
  readonly records: RecordStore<OidcStoreEntry>;
  /** Seals the pointers to sessions in `records` (token ids are hashed either way); without one they are kept as they are. */
  readonly sealer?: AdapterSealer;
  readonly log: Logger;
}

/**
 * The built-in development identity provider: node-oidc-provider in-process with demo users
 * and a plain login form. The registry signs in against it exactly as against a real IdP
 * (authorization code + PKCE through openid-client); only the login form is ours.
 */
export function createDevProvider(options: DevProviderOptions): IdentityProvider {
  const issuer = `${options.publicUrl}${DEV_IDP_PATH}`;
  const redirectUri = `${options.publicUrl}/oauth/callback/dev`;
  const clientSecret = derive(options.secretKey, 'dev-idp-client-secret');
  const provider = new Provider(issuer, providerConfiguration(options, redirectUri, clientSecret, devMachineSecret(options.secretKey)));
  // oidc-provider (a Koa app) builds every URL it publishes - issuer-relative endpoints in the
  // discovery document, redirects, the interaction URL - from the request's host and scheme.
  // Those come from the client (Host, X-Forwarded-*), so idpRouter pins them to
  // GATEWAY_PUBLIC_URL before oidc-provider sees the request; `proxy` makes Koa read the pinned
  // X-Forwarded-Proto, which is how an https public URL behind a TLS load balancer stays https.
  provider.proxy = true;
  provider.on('server_error', (_ctx: unknown, err: Error) => options.log.error({ err }, 'dev IdP server error'));

  const login = new OidcLogin({
    scope: SCOPE,
    groupsClaim: 'groups',
    configuration: async () => {
      const internal = `${options.internalUrl()}${DEV_IDP_PATH}`;
      const configuration = new client.Configuration(
        {
          issuer,
          authorization_endpoint: `${issuer}/auth`,
          token_endpoint: `${internal}/token`,
          jwks_uri: `${internal}/jwks`,
          userinfo_endpoint: `${internal}/me`,
          authorization_response_iss_parameter_supported: true,
        },
        CLIENT_ID,
        { client_secret: clientSecret, id_token_signed_response_alg: 'ES256' },
      );
      // The in-process IdP is reached over loopback http; only the dev provider does this.
      client.allowInsecureRequests(configuration);
      client.enableNonRepudiationChecks(configuration);
      return configuration;
    },
  });

  return {
    name: 'dev',
    displayName: 'Development sign-in',
    redirectUri,
    startLogin: (uri: string) => login.startLogin(uri),
    finishLogin: (url: URL, expected: Omit<LoginChallenge, 'url'>, uri: string) => login.finishLogin(url, expected, uri),
    refresh: (token: string) => login.refresh(token),
    bearer: {
      issuer,
      jwksUri: async () => `${options.internalUrl()}${DEV_IDP_PATH}/jwks`,
      audience: DEV_AUDIENCE,
      clientClaim: 'client_id',
      groupsClaim: 'groups',
      // Only the machine client gets JWT access tokens, and oidc-provider makes a
      // client-credentials token's `sub` its client id.
      isMachine: (payload, clientId) => payload.sub === clientId,
    },
    router: idpRouter(provider, options),
    close: () => options.records.close(),
  };
}

/** The machine client's secret, derived from SECRET_KEY (the start banner shows where to find it). */
export function devMachineSecret(secretKey: string): string {
  return derive(secretKey, 'dev-machine-client-secret');
}

function providerConfiguration(options: DevProviderOptions, redirectUri: string, clientSecret: string, machineSecret: string): ProviderConfiguration {
  const byName = new Map(options.users.map((u) => [u.username, u]));
  return {
    clients: [
      {
        client_id: CLIENT_ID,
        client_secret: clientSecret,
        redirect_uris: [redirectUri],
        // Refresh tokens, so a dev session is re-checked like a Cognito or Okta one: the refresher
        // reads the user's groups again at every access-token lifetime (AccessToken below).
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_basic',
        id_token_signed_response_alg: 'ES256',
      },
      {
        client_id: DEV_MACHINE_CLIENT_ID,
        client_secret: machineSecret,
        redirect_uris: [],
        grant_types: ['client_credentials'],
        response_types: [],
        token_endpoint_auth_method: 'client_secret_basic',
        id_token_signed_response_alg: 'ES256',
      },
    ],
    adapter: recordStoreAdapter(options.records, undefined, options.sealer),
    // Derived from SECRET_KEY, not generated: every replica (and every restart) signs alike, so a
    // token one replica's IdP issued verifies on another.
    jwks: { keys: [deriveSigningJwk(options.secretKey, 'dev-idp-signing-key v1')] },
    cookies: { keys: [derive(options.secretKey, 'dev-idp-cookies')] },
    pkce: { required: () => true },
    ttl: {
      AuthorizationCode: 60,
      Interaction: 600,
      Session: 8 * 3600,
      Grant: 8 * 3600,
      AccessToken: 600,
      ClientCredentials: 600,
      IdToken: 600,
      RefreshToken: 30 * 24 * 3600,
    },
    // oidc-provider issues refresh tokens only for offline_access by default; the gateway's own
    // client gets one at every sign-in (the session's absolute lifetime still ends it), rotated
    // at each use so a copied token is worth one refresh at most.
    issueRefreshToken: async (_ctx: KoaContextWithOIDC, client) => client.clientId === CLIENT_ID && client.grantTypeAllowed('refresh_token'),
    rotateRefreshToken: true,
    scopes: ['openid', 'profile', 'email', 'groups'],
    claims: { openid: ['sub'], profile: ['name', 'preferred_username'], email: ['email'], groups: ['groups'] },
    // Put scope claims (groups) in the ID token so the registry needs no userinfo call.
    conformIdTokenClaims: false,
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      // Client-credentials tokens are JWTs for the gateway (RFC 8707 resource, RFC 9068 format);
      // the registry's own sign-in keeps plain OIDC tokens.
      resourceIndicators: {
        enabled: true,
        defaultResource: (_ctx: KoaContextWithOIDC, client) => (client.clientId === DEV_MACHINE_CLIENT_ID ? `${options.publicUrl}/api` : undefined) as string,
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx: KoaContextWithOIDC, resource: string) => {
          if (resource !== `${options.publicUrl}/api`) throw new errors.InvalidTarget();
          return { scope: 'mcp', audience: DEV_AUDIENCE, accessTokenFormat: 'jwt', accessTokenTTL: 600, jwt: { sign: { alg: 'ES256' } } };
        },
      },
    },
    interactions: { url: (_ctx: KoaContextWithOIDC, interaction) => `${DEV_IDP_PATH}/interaction/${interaction.uid}` },
    findAccount: (_ctx: KoaContextWithOIDC, sub: string) => {
      const user = byName.get(sub);
      if (!user) return undefined;
      return {
        accountId: sub,
        claims: () => ({ sub, name: user.username, preferred_username: user.username, email: `${user.username}@example.test`, groups: [...user.groups] }),
      };
    },
    // The registry is this IdP's only, first-party client: grant its scopes without a consent screen.
    loadExistingGrant: async (ctx: KoaContextWithOIDC) => {
      const oidc = ctx.oidc;
      const existing = oidc.result?.['consent']?.grantId ?? oidc.session?.grantIdFor(oidc.client!.clientId);
      if (existing) {
        const found = await oidc.provider.Grant.find(existing);
        if (found) return found;
      }
      const grant = new oidc.provider.Grant({ clientId: oidc.client!.clientId, accountId: oidc.session!.accountId! });
      grant.addOIDCScope(SCOPE);
      await grant.save();
      return grant;
    },
    renderError: (ctx: KoaContextWithOIDC, out: { error: string; error_description?: string | undefined }) => {
      ctx.type = 'html';
      ctx.body = `<!doctype html><title>Sign-in error</title><h1>Sign-in error</h1><p>${escapeHtml(out.error_description ?? out.error)}</p><p><a href="/">Back to the registry</a></p>`;
    },
  };
}

/** The IdP's own routes: our login form for interactions, then everything else to oidc-provider. */
function idpRouter(provider: Provider, options: DevProviderOptions): express.Router {
  const router = express.Router();
  const form = express.urlencoded({ extended: false, limit: '8kb' });
  router.use(pinPublicOrigin(options.publicUrl));

  router.get('/interaction/:uid', async (req: Request, res: Response) => {
    const details = await provider.interactionDetails(req, res);
    res.render('idp-login', { uid: details.uid, error: undefined, username: '' });
  });

  router.post('/interaction/:uid/login', form, async (req: Request, res: Response) => {
    await provider.interactionDetails(req, res); // binds the form to this browser's interaction cookie
    const username = String(req.body?.username ?? '');
    const user = authenticateDemoUser(options.users, username, String(req.body?.password ?? ''));
    if (!user) {
      options.log.info({ username }, 'dev IdP: wrong user name or password');
      res.status(401).render('idp-login', { uid: req.params['uid'], error: 'Wrong user name or password.', username });
      return;
    }
    await provider.interactionFinished(req, res, { login: { accountId: user.username } }, { mergeWithLastSubmission: false });
  });

  router.post('/interaction/:uid/abort', async (req: Request, res: Response) => {
    await provider.interactionFinished(
      req,
      res,
      { error: 'access_denied', error_description: 'the user cancelled the sign-in' },
      { mergeWithLastSubmission: false },
    );
  });

  // An expired or unknown interaction is the user's next step, not a server fault.
  router.use('/interaction', (err: Error, _req: Request, res: Response, _next: NextFunction) => {
    res.status(400).render('error', { status: 400, message: 'This sign-in page has expired. Start again from the registry.', signedIn: false });
  });

  router.use(provider.callback());
  return router;
}

/**
 * Replaces whatever host and scheme the client claimed (Host, X-Forwarded-Host/-Proto,
 * Forwarded) with GATEWAY_PUBLIC_URL's, so a request with `Host: evil.example` cannot make the
 * IdP publish endpoints, redirects or cookies for another origin.
 */
function pinPublicOrigin(publicUrl: string): express.RequestHandler {
  const { host, protocol } = new URL(publicUrl);
  const scheme = protocol.slice(0, -1);
  return (req, _res, next) => {
    req.headers.host = host;
    req.headers['x-forwarded-host'] = host;
    req.headers['x-forwarded-proto'] = scheme;
    delete req.headers['forwarded'];
    next();
  };
}

function derive(secret: string, purpose: string): string {
  return createHmac('sha256', secret).update(purpose).digest('base64url');
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
