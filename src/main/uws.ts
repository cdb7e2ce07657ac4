/**
 * @module main/uws
 * Loads the native uWebSockets.js binary, or refuses to start.
 *
 * The package's own entry silently falls back to a slow pure-JS shim when the native binary
 * cannot be loaded (or when env UWS_USE_FALLBACK is set). A server that quietly runs at a
 * fraction of its speed is worse than one that does not start, so this module loads
 * `binaries/uws_<platform>_<arch>_<abi>.node` itself and throws a RUNTIME error otherwise.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type * as UWS from 'uWebSockets.js';
import { ErrorCode, LexiconsError, messageOf } from '../errors.js';

export type Uws = typeof UWS;

const FALLBACK_VALUES = new Set(['true', 'True', 'TRUE', '1']);

let cached: Uws | undefined;

/** The native binary's file name for this Node.js build. */
export function binaryName(): string {
  return `uws_${process.platform}_${process.arch}_${process.versions.modules}.node`;
}

export function loadUws(env: NodeJS.ProcessEnv = process.env): Uws {
  if (cached) return cached;
  if (env.UWS_USE_FALLBACK !== undefined && FALLBACK_VALUES.has(env.UWS_USE_FALLBACK)) {
    throw new LexiconsError(
      ErrorCode.RUNTIME,
      `UWS_USE_FALLBACK=${env.UWS_USE_FALLBACK} asks uWebSockets.js for its slow pure-JS fallback; lexicons needs the native binary. Unset UWS_USE_FALLBACK.`,
    );
  }
  const require = createRequire(import.meta.url);
  let dir: string;
  try {
    dir = dirname(require.resolve('uWebSockets.js/package.json'));
  } catch (err) {
    throw new LexiconsError(ErrorCode.RUNTIME, `uWebSockets.js is not installed (npm ci): ${messageOf(err)}`, { cause: err });
  }
  const file = join(dir, 'binaries', binaryName());
  try {
    cached = require(file) as Uws;
  } catch (err) {
    throw new LexiconsError(
      ErrorCode.RUNTIME,
      `the native uWebSockets.js binary could not be loaded for Node.js ${process.version} (${process.platform}-${process.arch}, ABI ${process.versions.modules}): ${file}: ${messageOf(err).split('\n')[0]}. ` +
        'lexicons refuses to run on the slow JS fallback; use a Node.js version this uWebSockets.js build supports (engines in package.json).',
      { cause: err },
    );
  }
  if (typeof cached.App !== 'function') {
    cached = undefined;
    throw new LexiconsError(ErrorCode.RUNTIME, `${file} is not a uWebSockets.js binary (no App export)`);
  }
  return cached;
}

/** A uWS app: `SSLApp` (wss://, https://) with the PEM files of `tls`, else a plain `App`. */
export function newApp(uws: Uws, tls: { cert: string; key: string; passphrase?: string } | null): UWS.TemplatedApp {
  if (tls === null) return uws.App();
  return uws.SSLApp({ cert_file_name: tls.cert, key_file_name: tls.key, ...(tls.passphrase !== undefined ? { passphrase: tls.passphrase } : {}) });
}
