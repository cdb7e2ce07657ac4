/**
 * @module bench/peers/uws-raw
 * The physical limit: the chat app written straight on uWebSockets.js, one thread, no framework.
 * It speaks the lexicons wire protocol (`{"Echo":X}` -> `[{"Echo":X}]` to the caller; chat
 * messages published to channel subscribers with uWS native pub/sub) and authenticates with the
 * same Register/Login header data, hashed as lexicons hashes them.
 *
 * Usage: node dist/bench/peers/uws-raw.js [--port 0] [--host 127.0.0.1] [--rows N --channels C
 *   --users U] [--hash scrypt|sha256|none] [--wrap]
 * Prints one JSON line `{"listening":<port>,"pid":<pid>}` on stdout once it accepts connections;
 * SIGTERM closes it. `--wrap` answers Echo by wrapping the raw frame bytes without JSON.parse:
 * used to measure the load generator's own ceiling.
 */
import uWS from 'uWebSockets.js';
import { parseHeaderData, type Credentials } from '../loadgen/dataset.js';
import { setUpPeer, type PeerSession } from './peer-setup.js';

type Session = PeerSession;

const { store, port, host, flags } = setUpPeer(['wrap']);
const decoder = new TextDecoder();
const ECHO_PREFIX = Buffer.from('{"Echo":');
const scratch = Buffer.alloc(64 * 1024, 0x5b); // scratch[0] stays '['
const sockets = new Set<uWS.WebSocket<Session>>();

/** Header data from the upgrade request: HTTP header (lower-cased by uWS) or query parameter. */
function headerData(req: uWS.HttpRequest, name: string): Credentials | null {
  return parseHeaderData(req.getHeader(name.toLowerCase()) || req.getQuery(name) || '');
}

function dispatch(ws: uWS.WebSocket<Session>, call: unknown): void {
  if (typeof call !== 'object' || call === null || Array.isArray(call)) return error(ws, 'A call must be an object {"Signal": {...}}');
  const name = Object.keys(call)[0];
  if (name === undefined) return error(ws, 'Empty call');
  const args = (call as Record<string, unknown>)[name];
  const a = (typeof args === 'object' && args !== null ? args : {}) as Record<string, unknown>;
  switch (name) {
    case 'Echo':
      ws.send(JSON.stringify([{ Echo: args }]));
      return;
    case 'CreateChatMessage': {
      const user = ws.getUserData().user;
      if (user === null) return error(ws, 'Authentication required');
      if (typeof a.channel !== 'string' || !ws.isSubscribed(a.channel)) return error(ws, `Subscribe to ${String(a.channel)} before posting to it`);
      const row = store.createMessage(user.pk, a.channel, a.content);
      if (typeof row === 'string') return error(ws, row);
      app.publish(row.channel, JSON.stringify([{ CreateChatMessage: row }]));
      return;
    }
    case 'Subscribe':
      if (typeof a.channel !== 'string') return error(ws, 'Subscribe needs {channel: string}');
      ws.subscribe(a.channel);
      ws.send(JSON.stringify([{ Subscribe: { channel: a.channel } }]));
      return;
    case 'GetChatList': {
      const list = store.chatList(a.channel, a.limit);
      if (typeof list === 'string') return error(ws, list);
      ws.send(JSON.stringify([{ GetChatList: list }]));
      return;
    }
    case 'GetUser':
      ws.send(JSON.stringify([{ GetUser: store.getUser(a.email) }]));
      return;
    default:
      error(ws, `No signal [${name}]`);
  }
}

function error(ws: uWS.WebSocket<Session>, message: string): void {
  ws.send(JSON.stringify([{ Errors: [message] }]));
}

const app = uWS.App()
  .get('/health', (res) => {
    res.end('ok');
  })
  .ws<Session>('/*', {
    maxPayloadLength: 16 * 1024 * 1024,
    maxBackpressure: 64 * 1024 * 1024,
    idleTimeout: 120,
    upgrade: (res, req, context) => {
      const key = req.getHeader('sec-websocket-key');
      const protocol = req.getHeader('sec-websocket-protocol');
      const extensions = req.getHeader('sec-websocket-extensions');
      const login = headerData(req, 'Login');
      const register = headerData(req, 'Register');
      let aborted = false;
      res.onAborted(() => {
        aborted = true;
      });
      // Hashing is asynchronous (scrypt runs on the libuv pool): upgrade once it is done.
      void (async () => {
        const session: Session = { user: null, registered: false };
        let ok = login === null && register === null; // no header data: admitted anonymously
        if (register !== null) {
          session.user = await store.register(register);
          session.registered = ok = session.user !== null;
        }
        if (login !== null) {
          session.user = await store.login(login);
          ok = session.user !== null;
        }
        if (aborted) return;
        res.cork(() => {
          if (!ok) res.writeStatus('401 Unauthorized').end('Authentication failed');
          else res.upgrade(session, key, protocol, extensions, context);
        });
      })();
    },
    open: (ws) => {
      sockets.add(ws);
      const session = ws.getUserData();
      const user = session.user;
      if (user === null) return;
      if (session.registered) ws.send(JSON.stringify([{ Register: { success: true, pk: user.pk, email: user.email } }]));
      else ws.send(JSON.stringify([{ Login: { pk: user.pk, email: user.email } }]));
    },
    message: (ws, message) => {
      if (flags.wrap && message.byteLength + 2 <= scratch.length && Buffer.from(message, 0, ECHO_PREFIX.length).equals(ECHO_PREFIX)) {
        // Generator ceiling: no parse, no stringify: `[` + the frame + `]` from a scratch buffer
        // (uWS copies what it sends, so the scratch is free again on return).
        const n = message.byteLength;
        scratch.set(new Uint8Array(message), 1);
        scratch[n + 1] = 0x5d;
        ws.send(scratch.subarray(0, n + 2), false);
        return;
      }
      let frame: unknown;
      try {
        frame = JSON.parse(decoder.decode(message));
      } catch {
        return error(ws, 'Malformed JSON');
      }
      if (Array.isArray(frame)) for (const call of frame) dispatch(ws, call);
      else dispatch(ws, frame);
    },
    close: (ws) => {
      sockets.delete(ws);
    },
  });

let listenSocket: uWS.us_listen_socket | false = false;
app.listen(host, port, (socket) => {
  if (socket === false) {
    console.error(`uws-raw: cannot listen on ${host}:${port}`);
    process.exitCode = 1;
    return;
  }
  listenSocket = socket;
  process.stdout.write(JSON.stringify({ listening: uWS.us_socket_local_port(socket), pid: process.pid }) + '\n');
});

process.on('SIGTERM', () => {
  if (listenSocket !== false) uWS.us_listen_socket_close(listenSocket);
  listenSocket = false;
  for (const ws of sockets) ws.end(1001, 'server shutting down');
  sockets.clear();
});
