/**
 * The package as users get it: `npm pack` (which runs `prepack`, the package build) into a temp
 * folder; the tarball's file list; publint and @arethetypeswrong/cli on the tarball; then, from
 * the tarball installed into temp projects, `npx lexicons init my-app`, its `npm test` and
 * typecheck, and `npx lexicons start` serving that app to a client made with `lexicons/client`.
 * Installs use `--prefer-offline`: dependencies come from the npm cache that `npm ci` filled
 * (the registry is asked only for what the cache lacks).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { ROOT, spawnServer } from '../helpers/server.js';
import { tempDir, type TempDir } from '../helpers/temp-dir.js';

const run = promisify(execFile);
const INSTALL = ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error'];
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { name: string; version: string };

/**
 * This process's environment without the npm_* variables of an outer `npm test` (they would steer
 * the inner npm) and NODE_TEST_CONTEXT (it makes an inner `node --test` report to this runner).
 */
function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.toLowerCase().startsWith('npm_') && key !== 'NODE_TEST_CONTEXT'));
  return { ...env, ...extra };
}

/** Runs a command to completion in `cwd`; a failure's error carries its stdout and stderr. */
async function sh(command: string, args: string[], cwd: string, timeoutMs = 300_000): Promise<string> {
  try {
    const { stdout } = await run(command, args, { cwd, env: cleanEnv(), timeout: timeoutMs, maxBuffer: 32 * 1024 * 1024 });
    return stdout;
  } catch (err) {
    const e = err as Error & { stdout?: string; stderr?: string };
    throw new Error(`${command} ${args.join(' ')} (in ${cwd}) failed: ${e.message}\n${e.stdout ?? ''}\n${e.stderr ?? ''}`);
  }
}

interface PackResult {
  filename: string;
  files: Array<{ path: string }>;
}

describe('the packed package', { timeout: 900_000 }, () => {
  let tmp: TempDir;
  let tarball: string;
  let files: string[];
  /** A project made by `npx lexicons init my-app`, with the tarball installed. */
  let app: string;

  before(async () => {
    tmp = await tempDir('lexicons-pack-');
    const packed = JSON.parse(await sh('npm', ['pack', '--json', '--loglevel=error', '--pack-destination', tmp.path], ROOT)) as PackResult[];
    const result = packed[0]!;
    tarball = join(tmp.path, result.filename);
    files = result.files.map((f) => f.path).sort();
  });
  after(() => tmp?.[Symbol.asyncDispose]());

  test('ships the build, bin, README, LICENSE, templates and the admin page; no tests, benches, examples, sources or maps', () => {
    for (const file of [
      'package.json',
      'README.md',
      'LICENSE',
      'bin/lexicons.js',
      'dist/src/index.js',
      'dist/src/index.d.ts',
      'dist/src/client/index.js',
      'dist/src/client/index.d.ts',
      'dist/src/testing/index.js',
      'dist/src/testing/index.d.ts',
      'dist/src/main/cli.js',
      'dist/src/workers/ts-bootstrap.mjs',
      'dist/src/main/admin-web/index.html',
      'dist/src/main/admin-web/app.js',
      'dist/src/main/admin-web/style.css',
      'templates/app/main.ts',
      'templates/app/test/app.test.ts',
      'templates/app/package.json',
      'templates/app/tsconfig.json',
      'templates/app/gitignore',
    ]) {
      assert.ok(files.includes(file), `${file} is not in the tarball`);
    }
    const unwanted = files.filter((f) => /^(?:test|bench|examples|src|scripts|docs)\/|^dist\/(?:test|bench|examples)\/|\.map$|\.tsbuildinfo$|^dist\/src\/.*\.test\.|(?:^|\/)tsconfig\.json$/.test(f) && !f.startsWith('templates/'));
    assert.deepEqual(unwanted, []);
    for (const f of files) assert.match(f, /^(?:package\.json|README\.md|LICENSE|bin\/|dist\/src\/|templates\/app\/)/);
  });

  test('publint finds nothing to report', async () => {
    const out = await sh(process.execPath, [join(ROOT, 'node_modules', 'publint', 'src', 'cli.js'), 'run', tarball, '--strict'], tmp.path);
    assert.match(out, /All good!/);
  });

  test('@arethetypeswrong/cli: every entry resolves its types for node16 ESM and bundlers', async () => {
    const attw = join(ROOT, 'node_modules', '@arethetypeswrong', 'cli', 'dist', 'index.js');
    // ESM only (Node 20 cannot require() it; node10 resolution has no `exports`); no DefinitelyTyped look-up.
    const out = await sh(process.execPath, [attw, tarball, '--profile', 'esm-only', '--no-definitely-typed', '--format', 'json'], tmp.path);
    const report = JSON.parse(out) as { analysis: { entrypoints: Record<string, unknown> }; problems?: Record<string, Array<{ entrypoint: string; resolutionKind?: string }>> };
    assert.deepEqual(Object.keys(report.analysis.entrypoints).sort(), ['.', './client', './package.json', './testing']);
    // The JSON lists the problems of every resolution; the esm-only profile ignores these two.
    const problems = Object.values(report.problems ?? {})
      .flat()
      .filter((p) => p.resolutionKind !== 'node10' && p.resolutionKind !== 'node16-cjs');
    assert.deepEqual(problems, []);
  });

  test('from the installed tarball, `npx lexicons init my-app` writes an app whose `npm test` and typecheck pass', async () => {
    const consumer = join(tmp.path, 'consumer');
    await mkdir(consumer);
    await writeFile(join(consumer, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
    await sh('npm', [...INSTALL, tarball], consumer);
    assert.equal((await sh('npx', ['lexicons', '--version'], consumer)).trim(), pkg.version);

    const created = await sh('npx', ['lexicons', 'init', 'my-app'], consumer);
    assert.match(created, /^Created my-app: /);
    app = join(consumer, 'my-app');
    // The template asks for lexicons@^version from the registry; this one comes from the tarball.
    await sh('npm', [...INSTALL, tarball], app);
    const installed = JSON.parse(readFileSync(join(app, 'node_modules', 'lexicons', 'package.json'), 'utf8')) as { version: string };
    assert.equal(installed.version, pkg.version);

    const tested = await sh('npm', ['test', '--silent'], app);
    assert.match(tested, /# pass 1\n/);
    assert.match(tested, /# fail 0\n/);
    await sh('npm', ['run', 'typecheck', '--silent'], app);
  });

  test('`npx lexicons start` serves the app; a lexicons/client client calls it; SIGTERM stops it cleanly', async (t) => {
    if (app === undefined) return t.skip('needs the app of the previous test');
    await using data = await tempDir();
    await using server = await spawnServer(['lexicons', 'start', 'main.ts', '--port', '0', '--host', '127.0.0.1', '--data', data.path], {
      command: 'npx',
      group: true,
      cwd: app,
      env: cleanEnv({ LEXICONS_LOG: 'all' }),
      timeoutMs: 120_000,
    });
    await writeFile(
      join(app, 'client.mjs'),
      `import WebSocket from 'ws';
import { createClient } from 'lexicons/client';
const client = createClient({ url: process.argv[2], WebSocket, headers: { Guest: { name: 'ann' } }, reconnect: false });
console.log(JSON.stringify(await client.call('AddNote', { text: 'from the package' })));
client.close();
`,
    );
    const reply = JSON.parse(await sh(process.execPath, ['client.mjs', server.url], app, 60_000)) as Record<string, unknown>;
    assert.equal(reply.text, 'from the package');
    assert.equal(reply.author, 'ann');
    // The group gets SIGTERM (npx itself dies of it); the server shuts down in order.
    await server.stop('SIGTERM');
    assert.match(server.output(), /"status":"SHUTDOWN","phase":"done".*"saved":\{"Note":1\}/);
    assert.match(readFileSync(join(data.path, 'Note.csv'), 'utf8'), /from the package/);
  });
});
