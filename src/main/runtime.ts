/** Placeholder: the runtime (uWS main thread + worker pool) is being written. */
import type { RunOverrides, RunningServer, Server } from '../server.js';
import { ErrorCode, LexiconsError } from '../errors.js';

export async function startServer(_server: Server, _overrides: RunOverrides): Promise<RunningServer> {
  throw new LexiconsError(ErrorCode.RUNTIME, 'runtime not implemented yet');
}
