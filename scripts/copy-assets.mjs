#!/usr/bin/env node
// Build step: copies every file under src/ that TypeScript does not compile (HTML, CSS, images,
// JSON, ...: e.g. a page's assets next to the module that serves them) to the same path under
// dist/src/, so a module finds them at `new URL('./<name>', import.meta.url)` in the repository's
// build and in the installed package alike. `--clean` first removes dist/src/ (the package build
// starts from nothing, so no stale file is shipped). A browser page with its own build (a folder
// with a tsconfig.json, e.g. src/main/admin-web, bundled by `npm run build:admin`) is left to it.
// It also removes what tsc wrote earlier for a .ts file that no longer exists (dist/ is never
// cleaned by tsc: a moved or deleted test would otherwise still run in `npm test`).
import { cpSync, existsSync, readdirSync, rmSync } from 'node:fs';
import { basename, dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const from = join(root, 'src');
const to = join(root, 'dist', 'src');
/** Compiled by tsc (sources and declarations); everything else is an asset. */
const COMPILED = /\.(?:[cm]?ts|tsx)$/;
/** Folders under src/ that esbuild bundles into dist/src/ (their sources are not shipped as such). */
const BUNDLED = new Set(readdirSync(from, { recursive: true }).filter((name) => basename(String(name)) === 'tsconfig.json').map((name) => dirname(String(name))));

if (process.argv.includes('--clean')) rmSync(to, { recursive: true, force: true });
for (const entry of readdirSync(from, { recursive: true, withFileTypes: true })) {
  if (!entry.isFile() || COMPILED.test(entry.name)) continue;
  const source = join(entry.parentPath ?? entry.path, entry.name); // parentPath: Node 20.12+
  if (BUNDLED.has(relative(from, dirname(source)))) continue;
  cpSync(source, join(to, relative(from, source)));
}

/** tsc's outputs (`x.js`, `x.js.map`, `x.d.ts`, `x.d.ts.map`) under dist/<dir> whose `x.ts` is gone. */
const OUTPUT = /^(.*)\.(?:js|js\.map|d\.ts|d\.ts\.map)$/;
for (const dir of ['src', 'test', 'bench', 'examples', 'scripts']) {
  const built = join(root, 'dist', dir);
  if (!existsSync(built)) continue;
  for (const entry of readdirSync(built, { recursive: true, withFileTypes: true })) {
    const m = entry.isFile() ? OUTPUT.exec(entry.name) : null;
    if (m === null) continue;
    const output = join(entry.parentPath ?? entry.path, entry.name);
    const stem = join(root, dir, relative(built, join(dirname(output), m[1])));
    if (BUNDLED.has(relative(from, dirname(stem))) || existsSync(`${stem}.ts`) || existsSync(`${stem}.tsx`) || existsSync(`${stem}.mts`)) continue;
    rmSync(output);
  }
}
