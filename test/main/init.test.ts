/**
 * `lexicons init [folder]` through the CLI: the files it writes from templates/app, the versions in
 * its package.json, and its refusals (a non-empty folder, options). The generated app is installed
 * from the packed tarball and its own `npm test` run in test/package/pack.test.ts.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { packageName } from '../../src/main/init.js';
import { ROOT, runCli } from '../helpers/server.js';
import { tempDir, type TempDir } from '../helpers/temp-dir.js';

const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string; dependencies: Record<string, string>; devDependencies: Record<string, string> };

describe('lexicons init', () => {
  let tmp: TempDir;
  let dir: string;
  before(async () => ({ path: dir } = tmp = await tempDir()));
  after(() => tmp[Symbol.asyncDispose]());

  test('writes the template app into a new folder and says what to do next', async () => {
    const result = await runCli(['init', 'My App'], { cwd: dir });
    assert.equal(result.code, 0, result.stderr);
    const files = ['.gitignore', 'main.ts', 'package.json', join('test', 'app.test.ts'), 'tsconfig.json'];
    assert.equal(result.stdout, `Created My App: ${files.join(', ')}\n\nNext:\n  cd My App\n  npm install\n  npm test     # test/app.test.ts, with lexicons/testing\n  npm start    # ws://localhost:5000\n`);
    for (const file of files) assert.ok(existsSync(join(dir, 'My App', file)), file);
    const app = JSON.parse(readFileSync(join(dir, 'My App', 'package.json'), 'utf8')) as Record<string, Record<string, string>>;
    assert.equal(app.name, 'my-app');
    assert.deepEqual(app.dependencies, { lexicons: `^${pkg.version}` });
    assert.deepEqual(app.devDependencies, { '@types/node': pkg.devDependencies['@types/node'], tsx: pkg.dependencies.tsx, typescript: pkg.devDependencies.typescript });
    assert.deepEqual(Object.keys(app.scripts!), ['start', 'test', 'typecheck']);
    const main = readFileSync(join(dir, 'My App', 'main.ts'), 'utf8');
    for (const part of ['extends Model', 'extends Signal', 'extends Channel', 'extends Header', 'export const server']) assert.ok(main.includes(part), part);
  });

  test('refuses a folder that is not empty, with the exact message', async () => {
    const full = join(dir, 'full');
    await mkdir(full);
    await writeFile(join(full, 'notes.txt'), 'mine');
    const result = await runCli(['init', 'full'], { cwd: dir });
    assert.equal(result.code, 1);
    assert.equal(result.stderr, 'lexicons: OPTION: full is not empty (notes.txt); lexicons init writes only into a new or empty folder\n');
    assert.equal(readFileSync(join(full, 'notes.txt'), 'utf8'), 'mine');
    assert.equal(existsSync(join(full, 'main.ts')), false);
  });

  test('the current folder by default; options are refused', async () => {
    const here = join(dir, 'here');
    await mkdir(join(here, '.git'), { recursive: true }); // a fresh `git init` still counts as empty
    assert.equal((await runCli(['init'], { cwd: here })).code, 0);
    assert.ok(existsSync(join(here, 'main.ts')));
    const refused = await runCli(['init', 'other', '--port', '1'], { cwd: dir });
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /^lexicons: --port does not apply to init$/m);
  });

  test('package names from folder names', () => {
    assert.equal(packageName('My App'), 'my-app');
    assert.equal(packageName('.hidden'), 'hidden');
    assert.equal(packageName('___'), 'lexicons-app');
  });
});
