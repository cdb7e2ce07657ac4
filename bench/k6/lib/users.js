// Users shared by the k6 scripts: the credentials of bench user k, and a setup() step that
// registers USERS of them through the Register header (each connection closes on its answer).
import ws from 'k6/ws';

export const user = (k) => ({ email: `login${k}@bench.test`, password: 'bench-password' });

export function registerUsers(url, count) {
  for (let k = 0; k < count; k++) {
    ws.connect(url, { headers: { Register: JSON.stringify(user(k)) } }, (socket) => {
      socket.on('message', () => socket.close());
      socket.setTimeout(() => socket.close(), 2000);
    });
  }
}
