/**
 * Disposable temp folders for tests: `await using tmp = await tempDir()` creates a fresh folder
 * under the OS temp dir and removes it (with everything in it) when the scope ends, whether the
 * test passed or threw.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TempDir extends AsyncDisposable {
  /** Absolute path of the folder. */
  readonly path: string;
}

/** A fresh folder named `<prefix>XXXXXX`; the prefix tells whose leftovers a folder is. */
export async function tempDir(prefix = 'lexicons-test-'): Promise<TempDir> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  return {
    path,
    // maxRetries: a process that just exited (a browser) may still be flushing files into it.
    [Symbol.asyncDispose]: () => rm(path, { recursive: true, force: true, maxRetries: 5 }),
  };
}
