/**
 * What a person does about the clients that act for them, for the page and the REST API alike:
 * the OAuth clients connected with their account (authserver/grants.ts) and their personal
 * access tokens (authserver/personal-tokens.ts). Everyone sees and revokes their own; an admin
 * (mcp:registry:admin) sees and revokes everyone's. Someone else's grant or token reads as
 * not found, never as forbidden.
 */
import type { Connections, ConnectionView } from '../authserver/grants.ts';
import type { PersonalTokens, PersonalTokenView } from '../authserver/personal-tokens.ts';
import { resourcesOf, serverScopes } from '../authserver/resources.ts';
import type { Principal } from '../authz/credentials.ts';
import type { Catalog } from '../catalog/catalog.ts';
import { GatewayError } from '../errors.ts';
import { hasScope } from '../scopes/decide.ts';
import { REGISTRY_ADMIN } from '../scopes/scope.ts';

export interface AccountActionsOptions {
  readonly catalog: Pick<Catalog, 'list'>;
  readonly publicUrl: string;
  readonly tokens: PersonalTokens;
  readonly connections: Connections | undefined;
}

export interface NewTokenInput {
  readonly name: string;
  readonly servers: readonly string[];
  readonly lifetimeDays: number;
}

export class AccountActions {
  readonly #o: AccountActionsOptions;

  constructor(options: AccountActionsOptions) {
    this.#o = options;
  }

  get maxLifetimeDays(): number {
    return this.#o.tokens.maxLifetimeDays;
  }

  isAdmin(p: Principal): boolean {
    return hasScope(p.scopes, REGISTRY_ADMIN);
  }

  /** The servers the person holds MCP scopes on now: what a token may be for. */
  tokenServers(p: Principal): string[] {
    return this.#o.catalog
      .list()
      .map((d) => d.name)
      .filter((name) => serverScopes(p.scopes, name).length > 0)
      .sort();
  }

  /** The MCP URL of a server (Streamable HTTP), for the ready-to-paste configurations. */
  mcpUrl(server: string): string {
    return resourcesOf(this.#o.publicUrl, server)[0];
  }

  listTokens(p: Principal): PersonalTokenView[] {
    return this.#o.tokens.list(this.isAdmin(p) ? undefined : person(p));
  }

  async createToken(p: Principal, input: NewTokenInput): Promise<{ token: string; view: PersonalTokenView }> {
    if (p.machineClient !== undefined) throw new GatewayError('AUTH_SCOPE_MISSING', 'Personal access tokens are for people, not machine clients.');
    const name = input.name.trim();
    const problems: { field: string; message: string }[] = [];
    if (name === '' || name.length > 64) problems.push({ field: 'name', message: 'Give the token a name of 1 to 64 characters.' });
    const allowed = new Set(this.tokenServers(p));
    const servers = [...new Set(input.servers)];
    if (servers.length === 0) problems.push({ field: 'servers', message: 'Choose at least one server.' });
    const refused = servers.filter((s) => !allowed.has(s));
    if (refused.length > 0) problems.push({ field: 'servers', message: `You hold no MCP scope on ${refused.join(', ')}.` });
    const max = this.#o.tokens.maxLifetimeDays;
    if (!Number.isInteger(input.lifetimeDays) || input.lifetimeDays < 1 || input.lifetimeDays > max)
      problems.push({ field: 'lifetimeDays', message: `The lifetime must be a whole number of days from 1 to ${max} (PAT_MAX_LIFETIME_DAYS).` });
    if (problems.length > 0) throw new GatewayError('REQUEST_INVALID', problems.map((f) => f.message).join(' '), { fields: problems });
    return this.#o.tokens.create(p.identity, { name, servers, lifetimeDays: input.lifetimeDays });
  }

  async revokeToken(p: Principal, id: string): Promise<PersonalTokenView> {
    const revoked = await this.#o.tokens.revoke(id, this.isAdmin(p) ? undefined : person(p));
    if (!revoked) throw new GatewayError('NOT_FOUND', 'There is no such token of yours.');
    return revoked;
  }

  async listConnections(p: Principal): Promise<ConnectionView[]> {
    if (!this.#o.connections) return [];
    return this.#o.connections.list(this.isAdmin(p) ? undefined : accountId(p));
  }

  async revokeConnection(p: Principal, id: string): Promise<ConnectionView> {
    const revoked = await this.#o.connections?.revoke(id, this.isAdmin(p) ? undefined : accountId(p));
    if (!revoked) throw new GatewayError('NOT_FOUND', 'There is no such connected client of yours.');
    return revoked;
  }
}

function person(p: Principal): { provider: string; sub: string } {
  return { provider: p.identity.provider, sub: p.identity.sub };
}

/** The authorization server's account id for the person: `<provider>:<sub>` (authorization-server.ts accountIdOf). */
function accountId(p: Principal): string {
  return `${p.identity.provider}:${p.identity.sub}`;
}
