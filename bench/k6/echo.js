// k6 echo workload for lexicons (or bench/peers/uws-raw.js): each VU opens one WebSocket logged
// in with a Login header, keeps WINDOW Echo calls in flight, and times each round trip from the
// timestamp carried in the payload. Users must exist: setup() registers them (Register header).
//
//   k6 run -e HOST=127.0.0.1 -e PORT=5000 -e VUS=50 -e DURATION=30s -e WINDOW=8 bench/k6/echo.js
import ws from 'k6/ws';
import { check } from 'k6';
import { Counter, Trend } from 'k6/metrics';
import { registerUsers, user } from './lib/users.js';

const HOST = __ENV.HOST || '127.0.0.1';
const PORT = __ENV.PORT || '5000';
const VUS = Number(__ENV.VUS || 50);
const DURATION = __ENV.DURATION || '30s';
const WINDOW = Number(__ENV.WINDOW || 8);
const USERS = Number(__ENV.USERS || VUS);
const SESSION_MS = Number(__ENV.SESSION_MS || 10000);
const URL = `ws://${HOST}:${PORT}/`;

const rtt = new Trend('echo_rtt', true);
const calls = new Counter('echo_calls');
const errors = new Counter('echo_errors');

export const options = {
  vus: VUS,
  duration: DURATION,
  thresholds: {
    echo_rtt: ['p(99)<10', 'p(50)<2'],
    echo_errors: ['count==0'],
    ws_connecting: ['p(99)<500'],
    ws_session_duration: [`p(99)<${SESSION_MS + 5000}`],
    checks: ['rate>0.99'],
  },
};

export function setup() {
  registerUsers(URL, USERS);
}

export default function () {
  const params = { headers: { Login: JSON.stringify(user((__VU - 1) % USERS)) } };
  let i = 0;
  const res = ws.connect(URL, params, (socket) => {
    const send = () => socket.send(JSON.stringify({ Echo: { t: Date.now(), i: i++ } }));
    socket.on('open', () => {
      for (let w = 0; w < WINDOW; w++) send();
    });
    socket.on('message', (data) => {
      for (const item of JSON.parse(data)) {
        if (item.Echo !== undefined) {
          rtt.add(Date.now() - item.Echo.t);
          calls.add(1);
          send();
        } else if (item.Errors !== undefined) {
          errors.add(1);
        }
      }
    });
    socket.setTimeout(() => socket.close(), SESSION_MS);
  });
  check(res, { 'upgrade accepted (101)': (r) => r && r.status === 101 });
}
