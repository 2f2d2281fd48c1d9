// Lint rules that keep the code's structure true without anyone remembering it (npm run check).
//
// TypeScript is parsed by Babel's parser: we write erasable TypeScript only (Node strips the
// types), and typescript-eslint cannot load TypeScript 7, which has no JavaScript API. Types are
// checked by `tsc --noEmit`; this file checks what tsc cannot: module boundaries, import cycles,
// where the environment is read, and logging.
import babelParser from '@babel/eslint-parser';
import comments from '@eslint-community/eslint-plugin-eslint-comments';
import importX from 'eslint-plugin-import-x';

const SRC = './registry/src';

/**
 * The layers of registry/src, lowest first. A module may import from its own folder and from
 * folders before it, never from one after it, so no two folders can import each other (a type
 * import counts: it still ties the two together). `gateway.ts` and `main.ts` are the composition
 * root: they alone may import everything, and nothing imports them.
 */
const LAYERS = [
  ['errors.ts', 'log.ts', 'crypto'],
  // Prometheus metrics, readiness, store health: fed by the composition root, read by web/ and nginx/.
  ['metrics'],
  ['store', 'audit', 'catalog'],
  ['scopes', 'config'],
  ['identity'],
  ['sessions'],
  // The gateway's own credentials for backends: the vault and token sources (issue 13).
  ['credentials'],
  ['authserver'],
  ['authz', 'mcp'],
  ['nginx'],
  ['web'],
];
const ROOT = ['gateway.ts', 'main.ts', 'check-config.ts'];

function layerZones() {
  const zones = [];
  LAYERS.forEach((layer, index) => {
    const later = LAYERS.slice(index + 1).flat();
    for (const part of layer) {
      if (later.length === 0) continue;
      zones.push({
        target: `${SRC}/${part}`,
        from: later.map((p) => `${SRC}/${p}`),
        except: [],
        message: `${part} sits below ${later.join(', ')} (eslint.config.js LAYERS): pass what it needs in from the composition root instead`,
      });
    }
  });
  zones.push({ target: LAYERS.flat().map((p) => `${SRC}/${p}`), from: ROOT.map((p) => `${SRC}/${p}`), message: 'only main.ts imports the composition root' });
  return zones;
}

export default [
  { ignores: ['node_modules/**', '.state/**', 'nginx/runtime/**', 'bench/results/**', '.test-artifacts/**'] },
  {
    files: ['**/*.ts', '**/*.js'],
    languageOptions: {
      ecmaVersion: 'latest',
      sourceType: 'module',
      parser: babelParser,
      parserOptions: { requireConfigFile: false, babelOptions: { babelrc: false, configFile: false, parserOpts: { plugins: ['typescript'] } } },
    },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    plugins: { 'import-x': importX, '@eslint-community/eslint-comments': comments },
    settings: { 'import-x/extensions': ['.ts', '.js'], 'import-x/resolver': { node: { extensions: ['.ts', '.js'] } } },
    rules: {
      'import-x/no-cycle': 'error',
      'import-x/no-self-import': 'error',
      'import-x/no-duplicates': 'error',
      // Every eslint-disable says why (STYLE.md 48).
      '@eslint-community/eslint-comments/require-description': 'error',
      '@eslint-community/eslint-comments/no-unlimited-disable': 'error',
      eqeqeq: ['error', 'always', { null: 'ignore' }],
      'no-var': 'error',
      'prefer-const': 'error',
    },
  },
  {
    files: ['registry/src/**/*.ts'],
    ignores: ['registry/src/**/*.test.ts', 'registry/src/nginx/harness.ts'],
    rules: {
      'import-x/no-restricted-paths': ['error', { zones: layerZones() }],
      // One logger (log.ts); console output bypasses redaction.
      'no-console': 'error',
      // The environment is read in one place, where it is validated (config/load.ts).
      'no-restricted-properties': ['error', { object: 'process', property: 'env', message: 'read configuration through config/load.ts' }],
    },
  },
  {
    // Rendering is pure: it returns text and never touches the disk or runs nginx.
    files: ['registry/src/nginx/render.ts', 'registry/src/nginx/render-server.ts', 'registry/src/nginx/names.ts', 'registry/src/scopes/**/*.ts'],
    ignores: ['**/*.test.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: ['node:fs', 'node:fs/promises', 'node:child_process', 'fs', 'child_process'].map((name) => ({
            name,
            message: 'keep decisions and rendering pure: I/O belongs in the adapters',
          })),
        },
      ],
    },
  },
  {
    // config/load.ts validates the environment; main.ts hands it over.
    files: ['registry/src/config/load.ts', 'registry/src/main.ts'],
    rules: { 'no-restricted-properties': 'off' },
  },
  {
    // The page's one script, served as is to browsers.
    files: ['registry/src/web/static/**/*.js'],
    languageOptions: { parser: undefined, parserOptions: {}, sourceType: 'script' },
    rules: { 'no-var': 'off', 'prefer-const': 'off' },
  },
  {
    // njs 0.7.9 is ES5 with a little ES6: no destructuring, no classes, no arrow functions in hot code.
    files: ['nginx/njs/**/*.js'],
    languageOptions: { parser: undefined, parserOptions: {}, ecmaVersion: 2015, sourceType: 'module' },
    rules: {
      'no-restricted-syntax': [
        'error',
        { selector: 'ObjectPattern, ArrayPattern', message: 'njs 0.7.9 rejects destructuring' },
        { selector: 'ClassDeclaration', message: 'keep njs code to functions' },
      ],
      'prefer-const': 'off',
      'no-var': 'off',
    },
  },
];
