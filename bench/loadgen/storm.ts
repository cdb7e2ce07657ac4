/**
 * @module bench/loadgen/storm
 * Connection set-up for the generator: registering users (Register header), opening an
 * authenticated connection (Login header or query), and the `connect` workload's storm of
 * handshakes, each closed as soon as it is accepted.
 */
import type { Job, User } from './job.js';
import type { LoadProcess } from './load-process.js';
import { FRAME, startsWith, type Protocol } from './protocols.js';
import { connectWs, nowUs, type RawWsConnection } from './ws-client.js';
import { FrameTemplate } from './ws-frame.js';

/** Upgrade headers and query string carrying one header datum (`Login`, `Register`) for `user`. */
export function authFor(job: Job, header: string, user: User | undefined): { headers: Record<string, string>; query: string } {
  if (user === undefined || job.auth === 'none') return { headers: {}, query: '' };
  const value = JSON.stringify(user);
  return job.auth === 'query' ? { headers: {}, query: `${header}=${encodeURIComponent(value)}` } : { headers: { [header]: value }, query: '' };
}

/** Open connection `id` logged in as its user, ready for calls (started). */
export async function openClient(job: Job, protocol: Protocol, id: number, localAddress: string | undefined): Promise<RawWsConnection> {
  const user = job.users.length === 0 ? undefined : job.users[id % job.users.length];
  const { headers, query } = authFor(job, job.authHeader, user);
  const conn = await connectWs({ host: job.host, port: job.port, path: protocol.path(query), headers, localAddress, timeoutMs: job.timeoutMs });
  const ready = protocol.ready(conn, job.timeoutMs);
  conn.start();
  try {
    await ready;
  } catch (error) {
    conn.destroy();
    throw error;
  }
  return conn;
}

/** Register `job.register` users, a few at a time; resolves with how many succeeded. */
export async function registerUsers(job: Job, protocol: Protocol): Promise<number> {
  const ok = protocol.responsePrefix('Register');
  let next = 0;
  let registered = 0;
  const one = async (user: User) => {
    const { headers, query } = authFor({ ...job, auth: job.auth === 'none' ? 'header' : job.auth }, 'Register', user);
    const conn = await connectWs({ host: job.host, port: job.port, path: protocol.path(query), headers, timeoutMs: job.timeoutMs });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => done(new Error(`no Register reply for ${user.email} within ${job.timeoutMs} ms`)), job.timeoutMs);
      const done = (error: Error | null) => {
        clearTimeout(timer);
        conn.onMessage = () => {};
        conn.onClose = () => {};
        conn.close();
        if (error) reject(error);
        else resolve();
      };
      // Handlers first: the reply may come in the very chunk of the upgrade response.
      conn.onMessage = (buf, start, end) => {
        const kind = protocol.classify(conn, buf, start, end);
        if (kind === FRAME.APP && startsWith(buf, start, end, ok)) done(null);
        else if (kind === FRAME.ERROR) done(new Error(`Register ${user.email} failed: ${buf.toString('utf8', start, end)}`));
      };
      conn.onClose = () => done(new Error(`connection closed while registering ${user.email} (code ${conn.closeCode})`));
      const ready = protocol.ready(conn, job.timeoutMs);
      conn.start();
      ready.catch((error: Error) => done(error));
    });
    registered++;
  };
  const worker = async () => {
    while (next < job.register.length) await one(job.register[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(job.setupConcurrency, job.register.length) }, worker));
  return registered;
}

/**
 * The `connect` workload: `concurrency` handshakes in flight until `stop` or `max` attempts.
 * A handshake counts when the upgrade is accepted (and, with `probe`, one Echo came back).
 */
export async function runStorm(lp: LoadProcess): Promise<void> {
  const job = lp.job;
  const storm = job.storm!;
  const probe = new FrameTemplate(lp.protocol.call('Echo', '{"t":{t:15}}'));
  const probeFrame = Buffer.from(probe.frame);
  const echoPrefix = lp.protocol.responsePrefix('Echo');
  let attempts = 0;
  const loop = async (lane: number) => {
    while (lp.running && attempts < storm.max) {
      const k = attempts++;
      const id = job.procIndex * 1_000_000 + k;
      const source = storm.sourceAddresses > 1 ? `127.0.0.${1 + ((lane + k) % storm.sourceAddresses)}` : undefined;
      const t0 = nowUs();
      lp.recordAttempt();
      try {
        const conn = await openClient(job, lp.protocol, id, source);
        if (storm.probe) await callAndWait(conn, lp.protocol, probeFrame, echoPrefix, job.timeoutMs);
        lp.recordHandshake(nowUs() - t0);
        conn.onClose = () => {};
        conn.close();
      } catch (error) {
        lp.recordFailure((error as Error).message);
      }
    }
  };
  await Promise.all(Array.from({ length: storm.concurrency }, (_, lane) => loop(lane)));
}

/** Send one ready-made call and wait for the frame starting with `prefix` (an error frame rejects). */
export function callAndWait(conn: RawWsConnection, protocol: Protocol, frame: Buffer, prefix: Buffer, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => done(new Error(`no ${prefix.toString()} reply within ${timeoutMs} ms`)), timeoutMs);
    const done = (error: Error | null) => {
      clearTimeout(timer);
      conn.onMessage = () => {};
      conn.onClose = () => {};
      if (error) {
        conn.destroy();
        reject(error);
      } else resolve();
    };
    conn.onMessage = (buf, start, end) => {
      const kind = protocol.classify(conn, buf, start, end);
      if (kind === FRAME.APP && startsWith(buf, start, end, prefix)) done(null);
      else if (kind === FRAME.ERROR) done(new Error(`call failed: ${buf.toString('utf8', start, Math.min(end, start + 200))}`));
    };
    conn.onClose = () => done(new Error(`connection closed before the ${prefix.toString()} reply (code ${conn.closeCode})`));
    conn.sendRaw(frame);
    conn.flush();
  });
}
