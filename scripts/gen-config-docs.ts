import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { renderConfigurationDoc } from '../registry/src/config/docs.ts';

writeFileSync(join(import.meta.dirname, '..', 'docs', 'configuration.md'), renderConfigurationDoc());
process.stdout.write('docs/configuration.md written\n');
