// k6 connection storm for lexicons (or bench/peers/uws-raw.js): RATE new connections per second,
// each authenticated with a Login header, counted once one Echo call came back (a rejected login
// closes the socket instead), then closed.
//
//   k6 run -e PORT=5000 -e RATE=200 -e DURATION=30s -e MAX_VUS=200 bench/k6/connect.js
import ws from 'k6/ws';
import { check } from 'k6';
import { Counter, Trend } from 'k6/metrics';
import { registerUsers, user } from './lib/users.js';

const HOST = __ENV.HOST || '127.0.0.1';
const PORT = __ENV.PORT || '5000';
const RATE = Number(__ENV.RATE || 100);
const DURATION = __ENV.DURATION || '30s';
const MAX_VUS = Number(__ENV.MAX_VUS || 200);
const USERS = Number(__ENV.USERS || 50);
const URL = `ws://${HOST}:${PORT}/`;

const ready = new Trend('connect_ready', true);
const accepted = new Counter('connect_accepted');
const refused = new Counter('connect_refused');

export const options = {
  scenarios: {
    storm: { executor: 'constant-arrival-rate', rate: RATE, timeUnit: '1s', duration: DURATION, preAllocatedVUs: Math.min(MAX_VUS, RATE), maxVUs: MAX_VUS },
  },
  thresholds: {
    connect_ready: ['p(99)<250'],
    connect_refused: ['count==0'],
    ws_connecting: ['p(99)<200'],
    checks: ['rate>0.99'],
  },
};

export function setup() {
  registerUsers(URL, USERS);
}

export default function () {
  const started = Date.now();
  let ok = false;
  const params = { headers: { Login: JSON.stringify(user(Math.floor(Math.random() * USERS))) } };
  const res = ws.connect(URL, params, (socket) => {
    socket.on('open', () => socket.send(JSON.stringify({ Echo: { t: started } })));
    socket.on('message', (data) => {
      for (const item of JSON.parse(data)) {
        if (item.Echo !== undefined) {
          ok = true;
          ready.add(Date.now() - started);
          accepted.add(1);
          socket.close();
        }
      }
    });
    socket.setTimeout(() => socket.close(), 5000);
  });
  if (!ok) refused.add(1);
  check(res, { 'upgrade accepted (101)': (r) => r && r.status === 101 });
}
