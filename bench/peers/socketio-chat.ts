/**
 * @module bench/peers/socketio-chat
 * What users would pick instead: the same chat app on Socket.IO 4 (default Node HTTP server and
 * `ws` engine, one process): rooms for channels, an in-memory array for storage, Register/Login
 * header data checked in a middleware with the same password hashing as lexicons.
 *
 * Events mirror the lexicons signals: `Echo` (back to the caller), `CreateChatMessage` (stored,
 * emitted to the channel's room), `Subscribe`, `GetChatList`, `GetUser`; failures emit `Errors`.
 *
 * Usage: node dist/bench/peers/socketio-chat.js [--port 0] [--host 127.0.0.1] [--rows N
 *   --channels C --users U] [--hash scrypt|sha256|none]
 * Prints `{"listening":<port>,"pid":<pid>}` on stdout once listening; SIGTERM closes it.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Server, type Socket } from 'socket.io';
import { parseHeaderData, type Credentials } from '../loadgen/dataset.js';
import { setUpPeer, type PeerSession } from './peer-setup.js';

type SessionData = PeerSession;

const { store, port, host } = setUpPeer();

const http = createServer((req, res) => {
  if (req.url === '/health') res.end('ok');
  else {
    res.statusCode = 404;
    res.end();
  }
});
const io = new Server<Record<string, (...args: any[]) => void>, Record<string, (...args: any[]) => void>, Record<string, never>, SessionData>(http, {
  serveClient: false,
  maxHttpBufferSize: 16 * 1024 * 1024,
  perMessageDeflate: false,
});

/** Header data from the handshake: HTTP header (lower-cased by Node) or query parameter. */
function headerData(socket: Socket, name: string): Credentials | null {
  const header = socket.handshake.headers[name.toLowerCase()];
  const query = socket.handshake.query[name];
  const raw = typeof header === 'string' ? header : typeof query === 'string' ? query : '';
  return parseHeaderData(raw);
}

io.use((socket, next) => {
  const login = headerData(socket, 'Login');
  const register = headerData(socket, 'Register');
  void (async () => {
    const session: SessionData = { user: null, registered: false };
    let ok = login === null && register === null;
    if (register !== null) {
      session.user = await store.register(register);
      session.registered = ok = session.user !== null;
    }
    if (login !== null) {
      session.user = await store.login(login);
      ok = session.user !== null;
    }
    socket.data = session;
    next(ok ? undefined : new Error('Authentication failed'));
  })();
});

io.on('connection', (socket) => {
  const session = socket.data;
  const user = session.user;
  if (user !== null && session.registered) socket.emit('Register', { success: true, pk: user.pk, email: user.email });
  else if (user !== null) socket.emit('Login', { pk: user.pk, email: user.email });
  const fail = (message: string) => socket.emit('Errors', [message]);

  socket.on('Echo', (args: unknown) => {
    socket.emit('Echo', args);
  });
  socket.on('CreateChatMessage', (args: { channel?: unknown; content?: unknown } | null) => {
    if (session.user === null) return fail('Authentication required');
    if (typeof args?.channel !== 'string' || !socket.rooms.has(args.channel)) return fail(`Subscribe to ${String(args?.channel)} before posting to it`);
    const row = store.createMessage(session.user.pk, args?.channel, args?.content);
    if (typeof row === 'string') return fail(row);
    io.to(row.channel).emit('CreateChatMessage', row);
  });
  socket.on('Subscribe', (args: { channel?: unknown } | null) => {
    if (typeof args?.channel !== 'string') return fail('Subscribe needs {channel: string}');
    void socket.join(args.channel);
    socket.emit('Subscribe', { channel: args.channel });
  });
  socket.on('GetChatList', (args: { channel?: unknown; limit?: unknown } | null) => {
    const list = store.chatList(args?.channel, args?.limit);
    if (typeof list === 'string') return fail(list);
    socket.emit('GetChatList', list);
  });
  socket.on('GetUser', (args: { email?: unknown } | null) => {
    socket.emit('GetUser', store.getUser(args?.email));
  });
});

http.listen(port, host, () => {
  const port = (http.address() as AddressInfo).port;
  process.stdout.write(JSON.stringify({ listening: port, pid: process.pid }) + '\n');
});

process.on('SIGTERM', () => {
  io.close();
  http.closeAllConnections();
});
