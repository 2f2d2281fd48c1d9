import { createHash } from 'node:crypto';
import type { Adapter, AdapterPayload } from 'oidc-provider';
import type { RecordStore, StoredRecord } from '../store/index.ts';

/** What one record of an oidc-provider store holds: a model's payload, or an index entry. */
export type OidcStoreEntry = { readonly payload: AdapterPayload } | { readonly ref: string } | { readonly members: readonly string[] };

/** Models whose records a grant owns, so revoking the grant removes them (oidc-provider's list). */
const GRANTABLE = new Set(['AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode', 'BackchannelAuthenticationRequest']);
/** oidc-provider stores some models without a lifetime (Client, Grant without expiry). */
const NO_EXPIRY_MS = 10 * 365 * 24 * 3600 * 1000;
/**
 * Models whose id is a bearer secret: the token itself (opaque access, refresh and
 * client-credentials tokens, authorization codes, registration tokens) or a cookie value
 * (Session, Interaction). Their record key holds the SHA-256 of the id and their stored payload
 * has no `jti` (it is the id; `find(id)` puts it back), so neither the folder nor Redis holds a
 * usable token. The pointers to them (`SessionUid:`, `UserCode:`) and a registered client's
 * `client_secret` are sealed.
 */
const SECRET_IDS = new Set([
  'AccessToken',
  'AuthorizationCode',
  'RefreshToken',
  'ClientCredentials',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
  'RegistrationAccessToken',
  'InitialAccessToken',
  'PushedAuthorizationRequest',
  'Session',
  'Interaction',
]);

/** Stands for a `jti` that is the record's id (the id the caller holds; never stored). */
const HIDDEN_JTI = '(the id)';

/** Seals what must be stored but not readable (sessions/seal.ts, passed in by the composition root). */
export interface AdapterSealer {
  seal(plain: string): string;
  open(sealed: string): string | undefined;
}

/** A compare-and-set that keeps losing means something is badly wrong; fail rather than spin. */
const MAX_ATTEMPTS = 20;

/**
 * oidc-provider's storage (its `adapter` option) on the gateway's record store, so what an
 * embedded provider issues — sessions, authorization codes, refresh tokens, grants — survives a
 * restart and follows the store to Redis later. Modelled on oidc-provider's MemoryAdapter:
 * `<Model>:<id>` holds a payload; `SessionUid:<uid>` and `UserCode:<code>` point at one; and
 * `GrantMembers:<grantId>` lists the records a grant owns, for `revokeByGrantId`. Every write is
 * a compare-and-set loop on the record's version, so concurrent writers never lose an update,
 * and readers get copies: oidc-provider may change what `find` returns without changing the store.
 */
export function recordStoreAdapter(store: RecordStore<OidcStoreEntry>, now: () => number = Date.now, sealer?: AdapterSealer): new (model: string) => Adapter {
  // Without a sealer (unit tests, and readers that never follow a pointer) pointers are kept as they are.
  const sealRef = (id: string) => (sealer ? `sealed:${sealer.seal(id)}` : id);
  const openRef = (ref: string) => (ref.startsWith('sealed:') ? sealer?.open(ref.slice('sealed:'.length)) : ref);

  async function put(
    key: string,
    entry: (current: StoredRecord<OidcStoreEntry> | undefined) => OidcStoreEntry,
    expiresAt: (current: StoredRecord<OidcStoreEntry> | undefined) => number,
  ): Promise<void> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const current = await store.get(key);
      const options = { expiresAt: expiresAt(current) };
      const result =
        current === undefined ? await store.create(key, entry(undefined), options) : await store.compareAndSet(key, current.version, entry(current), options);
      if (result.ok) return;
    }
    throw new Error(`oidc-provider store: ${key} kept changing under ${MAX_ATTEMPTS} writes`);
  }

  async function payloadOf(key: string): Promise<AdapterPayload | undefined> {
    const value = (await store.get(key))?.value;
    return value !== undefined && 'payload' in value ? (structuredClone(value.payload) as AdapterPayload) : undefined;
  }

  async function refOf(key: string): Promise<string | undefined> {
    const value = (await store.get(key))?.value;
    return value !== undefined && 'ref' in value ? value.ref : undefined;
  }

  return class RecordStoreAdapter implements Adapter {
    readonly #model: string;

    constructor(model: string) {
      this.#model = model;
    }

    /** The record's key: `<Model>:<id>`, or `<Model>:#<sha256(id)>` when the id is a bearer secret. */
    #key(id: string): string {
      return SECRET_IDS.has(this.#model) ? `${this.#model}:#${createHash('sha256').update(id).digest('base64url')}` : `${this.#model}:${id}`;
    }

    /** Where the record was kept before ids were hashed (read and removed, never written). */
    #legacyKey(id: string): string | undefined {
      return SECRET_IDS.has(this.#model) ? `${this.#model}:${id}` : undefined;
    }

    async upsert(id: string, payload: AdapterPayload, expiresIn?: number): Promise<void> {
      const key = this.#key(id);
      const until = typeof expiresIn === 'number' ? now() + Math.max(1, expiresIn) * 1000 : now() + NO_EXPIRY_MS;
      const stored: AdapterPayload = { ...payload };
      if (SECRET_IDS.has(this.#model) && stored.jti === id) stored.jti = HIDDEN_JTI;
      // A registered client's secret must be comparable, so it cannot be hashed: it is sealed.
      if (this.#model === 'Client' && typeof stored.client_secret === 'string' && sealer) stored.client_secret = sealRef(stored.client_secret);
      await put(
        key,
        () => ({ payload: stored }),
        () => until,
      );
      if (this.#model === 'Session' && typeof payload.uid === 'string')
        await put(
          `SessionUid:${payload.uid}`,
          () => ({ ref: sealRef(id) }),
          () => until,
        );
      if (typeof payload.userCode === 'string')
        await put(
          `UserCode:${createHash('sha256').update(payload.userCode).digest('base64url')}`,
          () => ({ ref: sealRef(id) }),
          () => until,
        );
      if (GRANTABLE.has(this.#model) && typeof payload.grantId === 'string') {
        await put(
          `GrantMembers:${payload.grantId}`,
          (current) => ({ members: [...new Set([...(current && 'members' in current.value ? current.value.members : []), key])] }),
          (current) => Math.max(current?.expiresAt ?? 0, until),
        );
      }
    }

    async find(id: string): Promise<AdapterPayload | undefined> {
      const legacy = this.#legacyKey(id);
      const payload = (await payloadOf(this.#key(id))) ?? (legacy === undefined ? undefined : await payloadOf(legacy));
      if (payload?.jti === HIDDEN_JTI) payload.jti = id;
      if (this.#model === 'Client' && typeof payload?.client_secret === 'string') {
        const secret = openRef(payload.client_secret);
        // Sealed under another SECRET_KEY: the client cannot authenticate, as if it had no secret.
        if (secret === undefined) delete payload.client_secret;
        else payload.client_secret = secret;
      }
      return payload;
    }

    async findByUid(uid: string): Promise<AdapterPayload | undefined> {
      const ref = await refOf(`SessionUid:${uid}`);
      const id = ref === undefined ? undefined : openRef(ref);
      return id === undefined ? undefined : this.find(id);
    }

    async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
      const ref = await refOf(`UserCode:${createHash('sha256').update(userCode).digest('base64url')}`);
      const id = ref === undefined ? undefined : openRef(ref);
      return id === undefined ? undefined : this.find(id);
    }

    /** Marks a one-time record (an authorization code, a rotated refresh token) as used. */
    async consume(id: string): Promise<void> {
      const legacy = this.#legacyKey(id);
      const key = legacy !== undefined && (await store.get(this.#key(id))) === undefined && (await store.get(legacy)) !== undefined ? legacy : this.#key(id);
      const consumed = Math.floor(now() / 1000);
      for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
        const current = await store.get(key);
        // Gone (destroyed or expired) stays gone: a consume never brings a record back.
        if (current === undefined || !('payload' in current.value)) return;
        const result = await store.compareAndSet(
          key,
          current.version,
          { payload: { ...current.value.payload, consumed } as AdapterPayload },
          { expiresAt: current.expiresAt },
        );
        if (result.ok) return;
      }
      throw new Error(`oidc-provider store: ${key} kept changing under ${MAX_ATTEMPTS} writes`);
    }

    async destroy(id: string): Promise<void> {
      await store.destroy(this.#key(id));
      const legacy = this.#legacyKey(id);
      if (legacy !== undefined) await store.destroy(legacy);
    }

    async revokeByGrantId(grantId: string): Promise<void> {
      const index = `GrantMembers:${grantId}`;
      const value = (await store.get(index))?.value;
      const members = value !== undefined && 'members' in value ? value.members : [];
      await Promise.all(members.map((key) => store.destroy(key)));
      await store.destroy(index);
    }
  };
}
