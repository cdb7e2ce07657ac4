/**
 * @module bench/app/main
 * The lexicons app the benchmarks run (`lexicons start dist/bench/app/main.js --workers N`): the
 * chat example (examples/chat) as is, plus the signals and the model the workloads need, and per-connection
 * limits raised so that the server is measured, not its rate limiter.
 * - `Echo` ({...any}): sends its arguments back to the caller, `[{"Echo": args}]`.
 * - `GetUser` ({email}): get-by-unique-field, `[{"GetUser": {pk, email} | null}]`.
 * - `Transfer` ({k, hot, n}): a bank transfer of 1 between two of the `n` seeded accounts `a0`..,
 *   read and updated by pk, `[{"Transfer": {from, to}}]`. `k` in [0, 100 n) picks the debited
 *   account: `a0` (the hot one) when `k % 100 < hot`, else `a<floor(k / 100)>`; the credited one is
 *   uniform among the others. `hot` = 0 is uniform; 80 is "80% contention".
 *
 * Env LEXICONS_BENCH_HISTORY=off serves the same app with a `Public` channel without history and
 * presence (bench/run.ts's `lexicons-w1-nohist` / `lexicons-w2-nohist`), to measure what they cost.
 */
import { Channel, ChannelManager, HeaderManager, Model, ModelManager, Server, Signal, SignalManager, TaskManager, field, type SignalContext } from '../../src/index.js';
import { Public as ChatPublic } from '../../examples/chat/channels.js';
import { Login, Register } from '../../examples/chat/headers.js';
import { ChatMessage, User } from '../../examples/chat/models.js';
import { CreateChatMessage, GetChatList, Subscribe } from '../../examples/chat/signals.js';
import { OnShutdown } from '../../examples/chat/tasks.js';

export class Echo extends Signal {
  execute({ db: _db, ws, sv: _sv, ...args }: SignalContext) {
    ws.send([{ Echo: args as Record<string, never> }]);
  }
}

export class GetUser extends Signal {
  static override args = { email: field.str() };

  execute({ email, db, ws }: SignalContext<{ email: string }>) {
    const user = db.get(User, { email });
    ws.send([{ GetUser: user ? { pk: user.pk, email: user.email } : null }]);
  }
}

export class Account extends Model {
  static balance = field.int();
}

export class Transfer extends Signal {
  static override args = { k: field.int(), hot: field.int(), n: field.int() };

  execute({ k, hot, n, db, ws }: SignalContext<{ k: number; hot: number; n: number }>) {
    const from = k % 100 < hot ? 0 : Math.floor(k / 100) % n;
    let to = Math.floor(Math.random() * (n - 1));
    if (to >= from) to++;
    const a = db.get(Account, `a${from}`);
    const b = db.get(Account, `a${to}`);
    if (a === null || b === null) throw new Error(`Transfer: account a${a === null ? from : to} not seeded`);
    db.update(Account, a, { balance: a.balance - 1 });
    db.update(Account, b, { balance: b.balance + 1 });
    ws.send([{ Transfer: { from, to } }]);
  }
}

/** The chat example's Public without its rules (no history, no presence): a plain broadcast group. */
class Public extends Channel {}
const history = process.env.LEXICONS_BENCH_HISTORY !== 'off';

export const server = new Server({
  protocol: 'ws',
  host: '127.0.0.1',
  port: 5000,
  models: new ModelManager(User, ChatMessage, Account),
  signals: new SignalManager(Subscribe, CreateChatMessage, GetChatList, Echo, GetUser, Transfer),
  headers: new HeaderManager(Login, Register),
  channels: new ChannelManager(history ? ChatPublic : Public),
  tasks: new TaskManager(OnShutdown),
  trust: [],
  debug: false,
  // Benchmarks send thousands of calls per second per connection and keep deep windows in flight.
  // Every benchmark connection logs in from 127.0.0.1: lift the per-address login rate limit too.
  limits: { messagesPerSecond: 1e9, maxBackpressureBytes: 64 << 20, maxMessageBytes: 16 << 20, authAttemptsPerMinute: 1e9, workerMemoryMb: 4096 },
  // Per-call log lines would cost more than the calls: keep only errors (stderr, read by the harness on failure).
  onLog: (status, data) => {
    if (status.endsWith('ERROR') || status === 'START' || status === 'LISTEN') process.stderr.write(`${JSON.stringify({ status, ...data })}\n`);
  },
});

server.runIfMain(import.meta.url);
