/**
 * The cluster tests' parts: nodes of bench/app/cluster.ts (the app bench/cluster.ts runs too) as
 * `lexicons start --redis` child processes (each with `--workers 1` and its own temp data
 * folder), and clients that keep a window of calls in flight and count the replies.
 */
import { after, before } from 'node:test';
import { fileURLToPath } from 'node:url';
import { RedisServer } from '../../bench/loadgen/redis-server.js';
import { spawnCli, type CliServer } from '../helpers/server.js';
import { tempDir, type TempDir } from '../helpers/temp-dir.js';
import { TestClient } from '../helpers/client.js';

/** The cluster app, built (dist/test/cluster -> dist/bench/app). */
export const CLUSTER_APP = fileURLToPath(new URL('../../bench/app/cluster.js', import.meta.url));

/** More of a node's command line and environment (e.g. `--snapshot-seconds`, `LEXICONS_CLUSTER_WINDOW`). */
export interface NodeOptions {
  readonly args?: readonly string[];
  readonly env?: NodeJS.ProcessEnv;
  /** Another app module than {@link CLUSTER_APP} (compiled path). */
  readonly app?: string;
}

/** A node that can be killed and started again on the same data folder. */
export class Node implements AsyncDisposable {
  readonly name: string;
  readonly redis: string;
  readonly data: TempDir;
  readonly options: NodeOptions;
  server: CliServer | null = null;

  private constructor(name: string, redis: string, data: TempDir, options: NodeOptions) {
    this.name = name;
    this.redis = redis;
    this.data = data;
    this.options = options;
  }

  static async start(name: string, redis: string, options: NodeOptions = {}): Promise<Node> {
    const node = new Node(name, redis, await tempDir(`lexicons-${name}-`), options);
    await node.start();
    return node;
  }

  async start(): Promise<void> {
    const args = [this.options.app ?? CLUSTER_APP, '--workers', '1', '--port', '0', '--host', '127.0.0.1', '--data', this.data.path, '--redis', this.redis, '--node-id', this.name, ...(this.options.args ?? [])];
    this.server = await spawnCli(args, { timeoutMs: 60_000, ...(this.options.env ? { env: this.options.env } : {}) });
  }

  /** The node's `/health` (cluster mode: its `cluster` view). */
  async health(): Promise<{ cluster: { node: string; phase: string; applied: number; lag: number; first: number; published: number; leader: boolean; nodes: Array<{ node: string; snapshotted: number; applied: number; gone: boolean; phase: string }> } }> {
    if (!this.server) throw new Error(`node ${this.name} is not running`);
    return (await (await fetch(`http://127.0.0.1:${this.server.port}/health`)).json()) as never;
  }

  get url(): string {
    if (!this.server) throw new Error(`node ${this.name} is not running`);
    return this.server.url;
  }

  /** A graceful stop (SIGTERM: the shutdown's snapshot, CSV files included); the folder stays. */
  async stop(): Promise<void> {
    await this.server?.stop();
    this.server = null;
  }

  async kill(): Promise<void> {
    await this.server?.stop('SIGKILL');
    this.server = null;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.server?.stop();
    await this.data[Symbol.asyncDispose]();
  }
}

export interface Outcome {
  acknowledged: number;
  failed: string[];
}

/**
 * Sends `calls` on `client` with at most `window` unanswered; every call answers with one frame
 * (an acknowledgement, or an `Errors` frame). Resolves when every call was answered.
 */
export async function drive(client: TestClient, calls: readonly unknown[], window = 8, timeoutMs = 30_000): Promise<Outcome> {
  const outcome: Outcome = { acknowledged: 0, failed: [] };
  let sent = 0;
  while (sent < Math.min(window, calls.length)) client.send(calls[sent++]);
  for (let answered = 0; answered < calls.length; answered++) {
    const frame = (await client.next(timeoutMs)) as Array<Record<string, unknown>>;
    const errors = frame[0]?.Errors;
    if (errors !== undefined) outcome.failed.push(JSON.stringify(errors));
    else outcome.acknowledged++;
    if (sent < calls.length) client.send(calls[sent++]);
  }
  return outcome;
}

export interface State {
  counters: Record<string, number>;
  balances: Record<string, number>;
  users: string[];
  messages: number;
}

/**
 * Everything a node holds (its `State` Signal), read after a write through that node: its
 * acknowledgement means the node applied every record before it in the stream, so every write
 * acknowledged before this call is in the state. The write's counter, `~sync`, is left out.
 */
export async function stateOf(url: string): Promise<State> {
  await using client = await TestClient.connect(url);
  await client.call({ Increment: { key: '~sync' } }, 15_000);
  const [frame] = (await client.call({ State: {} }, 15_000)) as [{ State: State }];
  const { '~sync': _, ...counters } = frame.State.counters;
  return { ...frame.State, counters, users: [...frame.State.users].sort() };
}

/** Every node's state; throws unless they are all the same. */
export async function agreedState(urls: readonly string[]): Promise<State> {
  const states = await Promise.all(urls.map((url) => stateOf(url)));
  const first = JSON.stringify(states[0]);
  if (!states.every((s) => JSON.stringify(s) === first)) throw new Error(`the nodes disagree:\n${states.map((s) => JSON.stringify(s).slice(0, 600)).join('\n')}`);
  return states[0]!;
}

/**
 * Resolves once `check()` holds, asking every 100 ms (for state outside the test's events: Redis
 * keys, a node's registry), or throws naming `what` after `timeoutMs`.
 */
export async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * For a `describe` block whose tests share one cluster: registers its before/after hooks, which
 * start a redis-server and nodes n1, n2, n3 on it, and stop them all. `nodes` is filled once the
 * `before` hook ran.
 */
export function clusterOfThree(): { readonly nodes: readonly Node[] } {
  const suite = { nodes: [] as Node[] };
  let redis: RedisServer | undefined;
  before(async () => {
    redis = await RedisServer.start();
    suite.nodes = await Promise.all(['n1', 'n2', 'n3'].map((name) => Node.start(name, redis!.url)));
  });
  after(async () => {
    for (const node of suite.nodes) await node[Symbol.asyncDispose]();
    await redis?.[Symbol.asyncDispose]();
  });
  return suite;
}
