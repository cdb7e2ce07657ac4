/**
 * @module main/listen
 * The listening socket of the uWS app (the main port and the admin port), taken exclusively.
 */
import type { TemplatedApp, us_listen_socket } from 'uWebSockets.js';
import { ErrorCode, LexiconsError } from '../errors.js';

/** uWS's `listen(host, port, options, cb)`: the binary has it, its type declarations do not. */
type ListenWithOptions = (host: string, port: number, options: number, cb: (socket: us_listen_socket | false) => void) => TemplatedApp;
/** uSockets' LIBUS_LISTEN_EXCLUSIVE_PORT (the typed `ListenOptions` enum does not exist at run time). */
const EXCLUSIVE_PORT = 1;

/**
 * Listens with LIBUS_LISTEN_EXCLUSIVE_PORT. Why: uWS's default SO_REUSEPORT lets a second server
 * on a port in use "listen" too, and the kernel splits new connections between the two processes;
 * exclusive, the second fails here. A fixed port gets SO_REUSEADDR (a restart rebinds at once);
 * port 0 does not (a successor on that number waits out its connections' TIME_WAIT).
 */
export function listenOn(app: TemplatedApp, host: string, port: number, what: string): Promise<us_listen_socket> {
  return new Promise((resolvePromise, reject) => {
    const listen = app.listen.bind(app) as unknown as ListenWithOptions;
    listen(host, port, EXCLUSIVE_PORT, (s) => {
      if (s) resolvePromise(s);
      else reject(new LexiconsError(ErrorCode.RUNTIME, `could not listen on ${host}:${port}${what} (address in use, or host not available)`));
    });
  });
}
