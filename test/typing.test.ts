/**
 * Type tests: types inferred from `static args` and `this.response` on both sides.
 * Runs `tsc --noEmit` over test/fixtures/types/ (excluded from the build) and checks that
 * `pass.ts` and `app.ts` compile, and that every line marked `// @expect TSxxxx [text]` in the
 * `fail-*` fixtures (misspelt Signal name on the client, wrong argument types on the client,
 * `execute` annotated against its `static args`) fails with exactly that code (and text), and
 * nothing else fails. The fixtures import `lexicons/client` (the package's own exports map, so
 * the built declarations are what is checked); run after `npm run build`. A second run checks
 * that those declarations need no Node types (fixtures/types/browser).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ROOT } from './helpers/server.js';

const DIR = join(ROOT, 'test', 'fixtures', 'types');
const TSC = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');

interface Diagnostic {
  file: string;
  line: number;
  code: string;
  text: string;
}

function runTsc(project = join(DIR, 'tsconfig.json')): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [TSC, '-p', project, '--pretty', 'false'], { cwd: ROOT, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      // tsc exits 2 when it reports errors, which the fail fixtures must produce.
      if (err && typeof err.code !== 'number') reject(err);
      else resolve(stdout + stderr);
    });
  });
}

/** `file(line,col): error TSxxxx: message` plus its indented continuation lines. */
function parse(output: string): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const line of output.split('\n')) {
    const m = /^(.+?)\((\d+),\d+\): error (TS\d+): (.*)$/.exec(line);
    if (m) out.push({ file: m[1]!.split('/').pop()!, line: Number(m[2]), code: m[3]!, text: m[4]! });
    else if (out.length > 0 && line.startsWith(' ')) out[out.length - 1]!.text += `\n${line.trim()}`;
  }
  return out;
}

describe('types from static args and response (tsc over test/fixtures/types)', () => {
  it('accepts the typed and the old style, and rejects exactly the marked lines', async () => {
    const diagnostics = parse(await runTsc());
    const files = (await readdir(DIR)).filter((f) => f.endsWith('.ts'));
    assert.ok(files.includes('pass.ts') && files.filter((f) => f.startsWith('fail-')).length === 3, `fixtures: ${files.join(', ')}`);
    let expected = 0;
    for (const file of files) {
      const lines = (await readFile(join(DIR, file), 'utf8')).split('\n');
      const got = diagnostics.filter((d) => d.file === file);
      const want: Array<{ line: number; code: string; text: string }> = [];
      lines.forEach((text, i) => {
        const m = /\/\/ @expect (TS\d+)(?: (.+))?$/.exec(text.trim());
        if (m) want.push({ line: i + 2, code: m[1]!, text: m[2] ?? '' });
      });
      if (!file.startsWith('fail-')) assert.deepEqual(got, [], `${file} must compile`);
      else assert.ok(want.length > 0, `${file} marks no expected error`);
      for (const w of want) {
        const match = got.filter((d) => d.line === w.line);
        assert.equal(match.length, 1, `${file}:${w.line}: expected one ${w.code}, got ${JSON.stringify(match)}`);
        assert.equal(match[0]!.code, w.code, `${file}:${w.line}: ${match[0]!.text}`);
        assert.ok(match[0]!.text.includes(w.text), `${file}:${w.line}: "${w.text}" not in: ${match[0]!.text}`);
        expected++;
      }
      const unexpected = got.filter((d) => !want.some((w) => w.line === d.line));
      assert.deepEqual(unexpected, [], `${file}: unexpected errors`);
    }
    assert.equal(expected, 8);
  });

  it("the client's declarations compile without Node types (a browser app: lib DOM, types [], skipLibCheck off)", async () => {
    assert.deepEqual(parse(await runTsc(join(DIR, 'browser', 'tsconfig.json'))), []);
  });
});
