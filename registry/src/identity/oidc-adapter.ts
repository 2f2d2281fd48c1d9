import type { Adapter, AdapterPayload } from 'oidc-provider';
import type { RecordStore, StoredRecord } from '../store/index.ts';

/** What one record of an oidc-provider store holds: a model's payload, or an index entry. */
export type OidcStoreEntry = { readonly payload: AdapterPayload } | { readonly ref: string } | { readonly members: readonly string[] };

/** Models whose records a grant owns, so revoking the grant removes them (oidc-provider's list). */
const GRANTABLE = new Set(['AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode', 'BackchannelAuthenticationRequest']);
/** oidc-provider stores some models without a lifetime (Client, Grant without expiry). */
const NO_EXPIRY_MS = 10 * 365 * 24 * 3600 * 1000;
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
export function recordStoreAdapter(store: RecordStore<OidcStoreEntry>, now: () => number = Date.now): new (model: string) => Adapter {
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

    #key(id: string): string {
      return `${this.#model}:${id}`;
    }

    async upsert(id: string, payload: AdapterPayload, expiresIn?: number): Promise<void> {
      const key = this.#key(id);
      const until = typeof expiresIn === 'number' ? now() + Math.max(1, expiresIn) * 1000 : now() + NO_EXPIRY_MS;
      await put(
        key,
        () => ({ payload }),
        () => until,
      );
      if (this.#model === 'Session' && typeof payload.uid === 'string')
        await put(
          `SessionUid:${payload.uid}`,
          () => ({ ref: id }),
          () => until,
        );
      if (typeof payload.userCode === 'string')
        await put(
          `UserCode:${payload.userCode}`,
          () => ({ ref: id }),
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

    find(id: string): Promise<AdapterPayload | undefined> {
      return payloadOf(this.#key(id));
    }

    async findByUid(uid: string): Promise<AdapterPayload | undefined> {
      const id = await refOf(`SessionUid:${uid}`);
      return id === undefined ? undefined : this.find(id);
    }

    async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
      const id = await refOf(`UserCode:${userCode}`);
      return id === undefined ? undefined : this.find(id);
    }

    /** Marks a one-time record (an authorization code, a rotated refresh token) as used. */
    async consume(id: string): Promise<void> {
      const key = this.#key(id);
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
