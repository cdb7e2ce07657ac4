/**
 * A terminal client for the chat example: registers (or logs in), subscribes to Public, prints
 * what arrives and posts every line typed.
 *
 *   node dist/examples/chat/client.js ann@example.com "correct horse" [--login] [ws://localhost:5000]
 */
import { createInterface } from 'node:readline';
import WebSocket from 'ws';

const [email, password, ...rest] = process.argv.slice(2);
if (!email || !password) {
  process.stderr.write('usage: client.js <email> <password> [--login] [url]\n');
  process.exit(2);
}
const header = rest.includes('--login') ? 'Login' : 'Register';
const base = rest.find((a) => a.startsWith('ws')) ?? 'ws://localhost:5000';
const ws = new WebSocket(`${base}/?${header}=${encodeURIComponent(JSON.stringify({ email, password }))}`);

ws.on('open', () => {
  ws.send(JSON.stringify([{ Subscribe: { channel: 'Public' } }, { GetChatList: { channel: 'Public', limit: 20 } }]));
  const lines = createInterface({ input: process.stdin });
  lines.on('line', (content) => ws.send(JSON.stringify({ CreateChatMessage: { channel: 'Public', content } })));
  lines.on('close', () => ws.close());
});
ws.on('message', (data) => process.stdout.write(`${data.toString()}\n`));
ws.on('close', (code, reason) => {
  process.stdout.write(`closed ${code} ${reason.toString()}\n`);
  process.exit(code === 1000 || code === 1005 ? 0 : 1);
});
ws.on('error', (err) => {
  process.stderr.write(`${err.message}\n`);
  process.exit(1);
});
