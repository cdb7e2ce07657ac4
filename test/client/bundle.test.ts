/**
 * The client as a browser gets it: bundled by esbuild for the browser platform (which fails on
 * any Node built-in), its import graph limited to src/client and src/wire.ts, minified and
 * gzipped under 10 KB; the package's `lexicons/client` export resolves; and the built chat page
 * (dist/examples/chat/web, made by `npm run build`) has no Node built-ins and no CDN.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { describe, it } from 'node:test';
import { build } from 'esbuild';
import { ROOT } from '../helpers/server.js';

describe('client bundle', () => {
  it('bundles for the browser from src/client and src/wire.ts only, under 10 KB minified+gzipped', async (t) => {
    const result = await build({
      entryPoints: [join(ROOT, 'src', 'client', 'index.ts')],
      bundle: true,
      minify: true,
      format: 'esm',
      platform: 'browser',
      target: 'es2022',
      write: false,
      metafile: true,
      logLevel: 'silent',
    });
    const inputs = Object.keys(result.metafile.inputs).sort();
    assert.deepEqual(inputs, ['src/client/backoff.ts', 'src/client/channels.ts', 'src/client/client.ts', 'src/client/errors.ts', 'src/client/index.ts', 'src/client/live.ts', 'src/client/util.ts', 'src/wire.ts']);
    for (const input of Object.values(result.metafile.inputs)) {
      for (const imported of input.imports) assert.ok(!imported.external && !imported.path.startsWith('node:'), `${imported.path} imported`);
    }
    const code = result.outputFiles[0]!.contents;
    const gzipped = gzipSync(code, { level: 9 }).byteLength;
    t.diagnostic(`client bundle: ${code.byteLength} B minified, ${gzipped} B minified+gzipped`);
    assert.ok(gzipped < 10 * 1024, `${gzipped} B gzipped`);
  });

  it('is the package export lexicons/client', async () => {
    const client = await import('lexicons/client');
    assert.equal(typeof client.createClient, 'function');
    assert.equal(client.WireCode.AUTH_FAILED, 'AUTH_FAILED');
    assert.equal(client.SUBPROTOCOL, 'lexicons.v1');
  });

  it('the built chat page loads only its own files and has no Node built-ins', async () => {
    const dir = join(ROOT, 'dist', 'examples', 'chat', 'web');
    const [html, css, js] = await Promise.all(['index.html', 'style.css', 'app.js'].map((f) => readFile(join(dir, f), 'utf8')));
    assert.match(html!, /<script type="module" src="app\.js"><\/script>/);
    assert.match(html!, /<link rel="stylesheet" href="style\.css">/);
    for (const [name, text] of [['index.html', html!], ['style.css', css!]] as const) assert.doesNotMatch(text, /(https?:)?\/\/[a-z0-9.-]+\.[a-z]{2,}\//i, `${name} loads nothing from elsewhere`);
    assert.doesNotMatch(js!, /\bnode:|\brequire\(/, 'no Node built-ins in app.js');
    assert.match(js!, /lexicons\.v1/, 'the client is bundled in');
  });
});
