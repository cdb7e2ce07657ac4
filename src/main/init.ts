/**
 * @module main/init
 * `lexicons init [folder]`: writes a new app from the package's template (templates/app/: main.ts
 * with a Model, a Header, a Channel and a Signal; a test written with lexicons/testing;
 * package.json; tsconfig.json; .gitignore) into a new or empty folder. The package.json depends on
 * this lexicons' version, and on the tsx, TypeScript and @types/node versions lexicons is built with.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { basename, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ErrorCode, LexiconsError } from '../errors.js';

/** The package root (dist/src/main/ → ../../../), where templates/ and package.json are. */
const PACKAGE_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const TEMPLATE = join(PACKAGE_ROOT, 'templates', 'app');
/** Template files stored under another name (npm never packs a `.gitignore`). */
const RENAMED: Readonly<Record<string, string>> = { gitignore: '.gitignore' };
/** What a folder may already hold and still count as empty. */
const IGNORED = new Set(['.git']);

export interface InitResult {
  /** The app's folder (absolute). */
  dir: string;
  /** The package name written to its package.json. */
  name: string;
  /** The files written, relative to `dir`, sorted. */
  files: string[];
}

/** Writes the template app into `folder` (created if missing); refuses a folder that holds anything. */
export async function initApp(folder: string, cwd: string = process.cwd()): Promise<InitResult> {
  const dir = resolve(cwd, folder);
  if (existsSync(dir)) {
    if (!statSync(dir).isDirectory()) throw new LexiconsError(ErrorCode.OPTION, `${folder} exists and is not a folder`);
    const present = readdirSync(dir).filter((entry) => !IGNORED.has(entry));
    if (present.length > 0) {
      throw new LexiconsError(ErrorCode.OPTION, `${folder} is not empty (${present.sort().slice(0, 3).join(', ')}${present.length > 3 ? ', ...' : ''}); lexicons init writes only into a new or empty folder`);
    }
  }
  const name = packageName(basename(dir));
  const values = templateValues(name);
  const files: string[] = [];
  for (const source of await listFiles(TEMPLATE)) {
    const path = relative(TEMPLATE, source);
    const target = join(dir, RENAMED[path] ?? path);
    await mkdir(join(target, '..'), { recursive: true });
    await writeFile(target, fill(await readFile(source, 'utf8'), values), { flag: 'wx' });
    files.push(relative(dir, target));
  }
  return { dir, name, files: files.sort() };
}

/** An npm package name from a folder name: lower case, other characters as `-`. */
export function packageName(folder: string): string {
  const name = folder.toLowerCase().replace(/[^a-z0-9._-]+/g, '-').replace(/^[._-]+/, '').slice(0, 214);
  return name === '' ? 'lexicons-app' : name;
}

/** `{{name}}`, `{{lexicons}}` (this version) and the versions of tsx, typescript, @types/node. */
function templateValues(name: string): Record<string, string> {
  const pkg = JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as {
    version: string;
    dependencies: Record<string, string>;
    devDependencies?: Record<string, string>;
  };
  const all = { ...pkg.devDependencies, ...pkg.dependencies };
  const values: Record<string, string> = { name, lexicons: pkg.version };
  for (const dep of ['tsx', 'typescript', '@types/node']) {
    const version = all[dep];
    if (version === undefined) throw new LexiconsError(ErrorCode.RUNTIME, `lexicons init: the package.json of lexicons names no version of ${dep}`);
    values[dep] = version;
  }
  return values;
}

function fill(text: string, values: Record<string, string>): string {
  return text.replace(/\{\{([^}]+)\}\}/g, (whole, key: string) => values[key] ?? whole);
}

async function listFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath ?? e.path, e.name));
}
