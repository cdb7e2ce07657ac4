/**
 * The tracked files of the repository hold no unresolved merge: no conflict marker lines (a merge
 * once committed docs/architecture.md with its `<<<<<<<` / `=======` / `>>>>>>>` lines).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ROOT } from './helpers/server.js';

function trackedFiles(): string[] | null {
  try {
    return execFileSync('git', ['ls-files', '-z'], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
      .split('\0')
      .filter((f) => f !== '');
  } catch {
    return null; // not a git checkout
  }
}

describe('the source tree', () => {
  it('has no merge conflict markers in any tracked text file', (t) => {
    const files = trackedFiles();
    if (files === null) return t.skip('not a git checkout');
    assert.ok(files.length > 100, `git ls-files listed ${files.length} files`);
    const marker = /^(<{7}|>{7})( |$)|^={7}$/m;
    const found: string[] = [];
    for (const file of files) {
      if (!/\.(ts|mts|mjs|js|json|md|html|css|sh|yml|yaml|txt)$/.test(file) || file === 'package-lock.json') continue;
      let text: string;
      try {
        text = readFileSync(join(ROOT, file), 'utf8');
      } catch {
        continue; // deleted in the work tree
      }
      const m = marker.exec(text);
      if (m) found.push(`${file}:${text.slice(0, m.index).split('\n').length}`);
    }
    assert.deepEqual(found, [], `conflict markers at ${found.join(', ')}`);
  });
});
