import { recordStoreAdapter, type OidcStoreEntry } from '../identity/oidc-adapter.ts';
import type { RecordStore, StoredRecord } from '../store/index.ts';
import { serverOfResource } from './resources.ts';
import { recordRevocation } from './revocations.ts';

/** One client a person authorized (an oidc-provider Grant), as the page and the API list it. */
export interface ConnectionView {
  readonly id: string;
  /** `<provider>:<sub>` of the person. */
  readonly accountId: string;
  readonly username: string;
  readonly clientId: string;
  /** client_name as the client registered it (untrusted text), or undefined. */
  readonly clientName: string | undefined;
  /** The hosts (or custom schemes) of its redirect URIs. */
  readonly redirectHosts: readonly string[];
  /** When the person first authorized it. */
  readonly authorizedAt: string;
  /** When it last got a token (its newest refresh token), if it still holds one. */
  readonly lastUsedAt: string | undefined;
  readonly servers: readonly { readonly server: string; readonly scopes: readonly string[] }[];
}

/**
 * The clients connected with people's accounts: the authorization server's grants, read from its
 * record store (`Grant:<id>`), and their revocation. Revoking destroys the grant and every record
 * it owns (refresh tokens, codes: `GrantMembers`), so its refresh token fails at once
 * (invalid_grant), and records the disconnection (revocations.ts), so the check refuses the
 * access tokens the client already holds on their next use, from memory. Listing scans the store's records
 * (it holds them in memory); an index by account is the step when a Redis store comes.
 */
export class Connections {
  readonly #records: RecordStore<OidcStoreEntry>;
  readonly #publicUrl: string;
  readonly #accessTokenTtlSeconds: number;
  readonly #grants;
  readonly #refreshTokens;

  constructor(options: { records: RecordStore<OidcStoreEntry>; publicUrl: string; accessTokenTtlSeconds: number }) {
    this.#records = options.records;
    this.#publicUrl = options.publicUrl;
    this.#accessTokenTtlSeconds = options.accessTokenTtlSeconds;
    const Adapter = recordStoreAdapter(options.records);
    this.#grants = new Adapter('Grant');
    this.#refreshTokens = new Adapter('RefreshToken');
  }

  /** The grants of `accountId`, or everyone's when it is undefined; newest first. */
  async list(accountId: string | undefined): Promise<ConnectionView[]> {
    const all = await this.#records.list();
    const byKey = new Map(all.map((r) => [r.key, r]));
    const out: ConnectionView[] = [];
    for (const record of all) {
      if (!record.key.startsWith('Grant:') || !('payload' in record.value)) continue;
      const grant = record.value.payload as { accountId?: string; clientId?: string; resources?: Record<string, string>; iat?: number };
      if (typeof grant.accountId !== 'string' || typeof grant.clientId !== 'string') continue;
      if (accountId !== undefined && grant.accountId !== accountId) continue;
      out.push(this.#view(record.key.slice('Grant:'.length), grant as Required<typeof grant>, record, byKey));
    }
    return out.sort((a, b) => b.authorizedAt.localeCompare(a.authorizedAt));
  }

  /** Revokes grant `id` when `accountId` owns it (any grant when undefined: an admin); undefined when there is none for them. */
  async revoke(id: string, accountId: string | undefined): Promise<ConnectionView | undefined> {
    const found = (await this.list(accountId)).find((c) => c.id === id);
    if (found === undefined) return undefined;
    // First the record the check refuses the client's access tokens by, then the grant itself.
    await recordRevocation(this.#records, found.accountId, found.clientId, this.#accessTokenTtlSeconds);
    await this.#refreshTokens.revokeByGrantId(id);
    await this.#grants.destroy(id);
    return found;
  }

  #view(
    id: string,
    grant: { accountId: string; clientId: string; resources?: Record<string, string>; iat?: number },
    record: StoredRecord<OidcStoreEntry>,
    byKey: Map<string, StoredRecord<OidcStoreEntry>>,
  ): ConnectionView {
    const client = payload(byKey.get(`Client:${grant.clientId}`)) as { client_name?: unknown; redirect_uris?: unknown } | undefined;
    const account = payload(byKey.get(`GatewayAccount:${grant.accountId}`)) as { account?: { username?: string } } | undefined;
    const members = byKey.get(`GrantMembers:${id}`)?.value;
    let lastUsed = 0;
    for (const key of members !== undefined && 'members' in members ? members.members : []) {
      const iat = (payload(byKey.get(key)) as { iat?: number } | undefined)?.iat;
      if (key.startsWith('RefreshToken:') && typeof iat === 'number') lastUsed = Math.max(lastUsed, iat);
    }
    const redirects = Array.isArray(client?.redirect_uris) ? client.redirect_uris.filter((u): u is string => typeof u === 'string') : [];
    return {
      id,
      accountId: grant.accountId,
      username: account?.account?.username ?? grant.accountId,
      clientId: grant.clientId,
      clientName: typeof client?.client_name === 'string' ? client.client_name : undefined,
      redirectHosts: [...new Set(redirects.map(hostOf))],
      authorizedAt: new Date(typeof grant.iat === 'number' ? grant.iat * 1000 : record.createdAt).toISOString(),
      lastUsedAt: lastUsed > 0 ? new Date(lastUsed * 1000).toISOString() : undefined,
      servers: Object.entries(grant.resources ?? {}).flatMap(([resource, scope]) => {
        const server = serverOfResource(this.#publicUrl, resource);
        return server === undefined ? [] : [{ server, scopes: scope.split(' ').filter((s) => s.startsWith('mcp:')) }];
      }),
    };
  }
}

function payload(record: StoredRecord<OidcStoreEntry> | undefined): unknown {
  return record !== undefined && 'payload' in record.value ? record.value.payload : undefined;
}

function hostOf(uri: string): string {
  const parsed = URL.parse(uri);
  if (!parsed) return uri;
  return parsed.host || parsed.protocol;
}
