import type { Config } from '../config/load.ts';
import type { Logger } from '../log.ts';
import { cognitoSpec } from './cognito.ts';
import { join } from 'node:path';
import { FileRecordStore, type RecordStore } from '../store/index.ts';
import { createDevProvider } from './dev.ts';
import type { AdapterSealer, OidcStoreEntry } from './oidc-adapter.ts';
import { createExternalProvider } from './external.ts';
import { genericSpec } from './generic.ts';
import { oktaSpec } from './okta.ts';
import type { IdentityProvider } from './provider.ts';

/** The one place that turns MCP_AUTH_PROVIDER_TYPE into a provider. */
export function createIdentityProvider(
  config: Config,
  deps: {
    internalUrl: () => string;
    machineClients: () => readonly string[];
    log: Logger;
    /** The dev provider's oidc-provider storage (the composition root opens it: files or Redis); default: files in STATE_DIR/idp. */
    devRecords?: RecordStore<OidcStoreEntry>;
    /** Seals what the dev provider's storage must keep unreadable (sessions/seal.ts). */
    sealer?: AdapterSealer;
  },
): IdentityProvider {
  const identity = config.identity;
  switch (identity.type) {
    case 'dev':
      return createDevProvider({
        publicUrl: config.gateway.publicUrl,
        internalUrl: deps.internalUrl,
        secretKey: config.secretKey,
        users: config.devUsers,
        records: deps.devRecords ?? new FileRecordStore<OidcStoreEntry>({ dir: join(config.stateDir, 'idp'), log: deps.log }),
        ...(deps.sealer === undefined ? {} : { sealer: deps.sealer }),
        log: deps.log,
      });
    case 'cognito':
      return createExternalProvider(identity, cognitoSpec(identity, deps.machineClients));
    case 'okta':
      return createExternalProvider(identity, oktaSpec(identity, deps.machineClients));
    case 'generic':
      return createExternalProvider(identity, genericSpec(identity));
  }
}
