/**
 * @module bench/loadgen/job
 * What the driver asks of each generator process, the messages they exchange, and the figures a
 * process reports. Shared by driver.ts (parent) and child.ts (one per `--procs`).
 */
import type { Histogram } from './histogram.js';
import type { ProtocolName } from './protocols.js';

export type HistogramData = ReturnType<Histogram['toJSON']>;

/**
 * - `echo`: every connection sends `Echo` calls and gets each back (round trip from `t`).
 * - `chat`: every connection is a subscriber; senders send `CreateChatMessage` to one channel;
 *   every delivered copy is counted and timed from `t` (delivery latency), a sender's own copy
 *   completes its call.
 * - `request`: request/response calls whose reply carries no timestamp (GetChatList, lookups):
 *   latency from a per-connection FIFO of send times.
 * - `connect`: a storm of upgrade + authentication handshakes, each closed once accepted.
 */
export type Mode = 'echo' | 'chat' | 'request' | 'connect';

export interface User {
  email: string;
  password: string;
}

export interface Job {
  mode: Mode;
  protocol: ProtocolName;
  host: string;
  port: number;
  /** Index of this process among `procs`; global connection id = procIndex * 1e6 + local index. */
  procIndex: number;
  procs: number;
  /** Connections this process opens (chat: subscribers, including its senders). */
  conns: number;
  /** Connections of this process that send (echo and request: all of them). */
  senders: number;
  /** Calls in flight per sender in closed-loop mode; the cap on backlog in open-loop mode. */
  window: number;
  /** Open-loop mode: calls/s for this whole process, paced in 1 ms ticks. 0 = closed loop. */
  rate: number;
  /** How header data is sent at connect: HTTP headers of the upgrade, URL query, or not at all. */
  auth: 'header' | 'query' | 'none';
  /** Header name and user list used at connect (`Login`); connection k logs in as users[k % n]. */
  authHeader: string;
  users: User[];
  /** Users this process registers (Register header) during setup, before anything else. */
  register: User[];
  /** Channel of the chat workload. */
  channel: string;
  /** Extra bytes of content per chat message / echo payload. */
  padding: number;
  /** `request` mode: the signal and its argument template with one slot `{k:W}` / `{k:Wz}`. */
  request?: { signal: string; args: string; keys: number };
  /**
   * `connect` mode: handshakes in flight, an upper bound on handshakes, source addresses to
   * rotate (127.0.0.1..n), and whether a handshake counts only after one Echo round trip (proves
   * the authenticated connection is usable: a rejected login closes the socket instead).
   */
  storm?: { concurrency: number; max: number; sourceAddresses: number; probe: boolean };
  /** Opening this many connections at once during setup. */
  setupConcurrency: number;
  /** Per-handshake and drain time limits. */
  timeoutMs: number;
}

/** Parent to child. */
export type Command =
  | { type: 'setup'; job: Job }
  | { type: 'go' }
  | { type: 'mark' }
  | { type: 'stop' }
  | { type: 'collect'; expectedPerConn: number }
  | { type: 'exit' };

/** Counts over the measurement window (between `mark` and `stop`). */
export interface WindowFigures {
  seconds: number;
  /** Calls sent. */
  sent: number;
  /** Calls completed: echo replies, own chat messages back, responses, accepted handshakes. */
  completed: number;
  /** Chat: every copy received by any connection of this process. */
  delivered: number;
  errors: number;
  /** Latency of completions (round trip / handshake) in us. */
  latency: HistogramData;
  /** Chat: delivery latency of every copy in us. */
  delivery: HistogramData;
  /** This process's own CPU use over the window (user + system seconds). */
  cpuSeconds: number;
  /** Open loop: calls not sent because a connection's backlog was full. */
  skipped: number;
  /**
   * The generator's event-loop delay (monitorEventLoopDelay, 1 ms resolution: it reads the delay
   * beyond that). A latency tail of about this size is the generator's, not the server's.
   */
  loopDelayMs: { p50: number; p99: number; max: number };
}

/** Totals over the whole run, after draining. */
export interface TotalFigures {
  sent: number;
  completed: number;
  delivered: number;
  errors: number;
  /** Frames neither counted nor errors (login replies, acks). */
  other: number;
  /** Connections that closed or failed unexpectedly. */
  dropped: number;
  /** Whether every in-flight call and expected copy arrived before the drain timeout. */
  drained: boolean;
  errorSamples: string[];
}

/** Child to parent. */
export type Report =
  | { type: 'ready'; connected: number; registered: number }
  | { type: 'stopped'; window: WindowFigures; sent: number }
  | { type: 'final'; totals: TotalFigures }
  | { type: 'failed'; message: string };

