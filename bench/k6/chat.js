// k6 chat workload for lexicons (or bench/peers/uws-raw.js): every VU logs in (Login header) and
// subscribes to channel Public; once subscribed, the first SENDERS VUs each send RATE
// CreateChatMessage calls per second; every VU times each delivered copy from the timestamp
// inside its content.
//
//   k6 run -e PORT=5000 -e VUS=200 -e SENDERS=20 -e RATE=50 -e DURATION=30s bench/k6/chat.js
import ws from 'k6/ws';
import { check } from 'k6';
import { Counter, Trend } from 'k6/metrics';
import { registerUsers, user } from './lib/users.js';

const HOST = __ENV.HOST || '127.0.0.1';
const PORT = __ENV.PORT || '5000';
const VUS = Number(__ENV.VUS || 100);
const SENDERS = Number(__ENV.SENDERS || 10);
const RATE = Number(__ENV.RATE || 20);
const DURATION = __ENV.DURATION || '30s';
const USERS = Number(__ENV.USERS || VUS);
const SESSION_MS = Number(__ENV.SESSION_MS || 10000);
const CHANNEL = __ENV.CHANNEL || 'Public';
const URL = `ws://${HOST}:${PORT}/`;

const delivery = new Trend('chat_delivery', true);
const delivered = new Counter('chat_delivered');
const sent = new Counter('chat_sent');
const errors = new Counter('chat_errors');

export const options = {
  vus: VUS,
  duration: DURATION,
  thresholds: {
    chat_delivery: ['p(99)<10'],
    chat_errors: ['count==0'],
    ws_connecting: ['p(99)<500'],
    ws_session_duration: [`p(99)<${SESSION_MS + 5000}`],
    checks: ['rate>0.99'],
  },
};

const MARK = /~t(\d+)~c(\d+)~/;

export function setup() {
  registerUsers(URL, USERS);
}

export default function () {
  const params = { headers: { Login: JSON.stringify(user((__VU - 1) % USERS)) } };
  const res = ws.connect(URL, params, (socket) => {
    socket.on('open', () => socket.send(JSON.stringify({ Subscribe: { channel: CHANNEL } })));
    socket.on('message', (data) => {
      for (const item of JSON.parse(data)) {
        if (item.Subscribe !== undefined && __VU <= SENDERS) {
          socket.setInterval(() => {
            socket.send(JSON.stringify({ CreateChatMessage: { channel: CHANNEL, content: `~t${Date.now()}~c${__VU}~` } }));
            sent.add(1);
          }, 1000 / RATE);
        } else if (item.CreateChatMessage !== undefined) {
          const m = MARK.exec(item.CreateChatMessage.content || '');
          if (m) {
            delivery.add(Date.now() - Number(m[1]));
            delivered.add(1);
          }
        } else if (item.Errors !== undefined) {
          errors.add(1);
        }
      }
    });
    socket.setTimeout(() => socket.close(), SESSION_MS);
  });
  check(res, { 'upgrade accepted (101)': (r) => r && r.status === 101 });
}
