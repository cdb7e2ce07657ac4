/**
 * k6 cannot run here: check that every bench/k6 script at least parses as an ES module
 * (copied to a temp .mjs, then `node --check`) and declares options with thresholds.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { tempDir } from '../helpers/temp-dir.js';

const K6_DIR = fileURLToPath(new URL('../../../bench/k6/', import.meta.url)); // dist/test/bench -> repo
const scripts = readdirSync(K6_DIR).filter((f) => f.endsWith('.js'));
const tmp = await tempDir('k6-check-');
after(() => tmp[Symbol.asyncDispose]());

describe('bench/k6 scripts', () => {
  it('exist for echo, chat and connect', () => {
    assert.deepEqual(scripts.sort(), ['chat.js', 'connect.js', 'echo.js']);
  });

  it('lib/users.js (shared by the scripts) parses as an ES module', () => {
    const copy = join(tmp.path, 'users.mjs');
    copyFileSync(join(K6_DIR, 'lib', 'users.js'), copy);
    execFileSync(process.execPath, ['--check', copy], { stdio: 'pipe' });
  });

  for (const script of scripts) {
    it(`${script} parses as an ES module`, () => {
      const copy = join(tmp.path, script.replace(/\.js$/, '.mjs'));
      copyFileSync(join(K6_DIR, script), copy);
      execFileSync(process.execPath, ['--check', copy], { stdio: 'pipe' });
    });

    it(`${script} uses k6/ws, thresholds and env-driven options`, () => {
      const text = readFileSync(join(K6_DIR, script), 'utf8');
      assert.match(text, /from 'k6\/ws'/);
      assert.match(text, /export const options/);
      assert.match(text, /thresholds:/);
      assert.match(text, /p\(99\)</);
      assert.match(text, /__ENV\.PORT/);
      assert.match(text, /export default function/);
    });
  }
});
