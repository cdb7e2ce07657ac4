/**
 * @module main/job-commits
 * Cluster mode: the commit requests of the pool's jobs (workers/progress.ts "Cluster mode"). A
 * cluster node runs several jobs per worker (main/pool.ts), so a job can fail (its thread
 * terminated for ANOTHER job's time limit, or crashed) while one of its commit records is in the
 * stream, undecided. Whether that record commits decides which of its units must never run
 * again, and only the main thread learns it. So, per progress slot, the job running in it:
 * - a commit request names its job ({@link CommitTicket}); a request of a job that is no longer
 *   running (failed, or its slot reused) is refused unsent: its thread is being terminated;
 * - when a record commits, its ticket's finished units are stored into the slot
 *   ({@link ProgressReader.committed}) before the worker is answered;
 * - a failed job is {@link JobCommits.close}d at once (no further request of it is sent), and its
 *   failure is handled once its records in flight are decided (each within the cluster's decision
 *   timeout, main/cluster.ts), so the `done` it reads counts them.
 * A single node sends no requests: closing a job then resolves at once.
 */
import type { ClusterCommitResult } from '../workers/control-plane.js';
import type { CommitTicket, ProgressReader } from '../workers/progress.js';

interface RunningJob {
  readonly jobId: number;
  open: boolean;
  /** The finished units of its last record that committed (-1: none committed). */
  committed: number;
  /** Its commit requests whose decision has not come yet. */
  readonly pending: Set<Promise<unknown>>;
}

export class JobCommits {
  readonly #progress: ProgressReader;
  /** The job of each slot in use, by slot. */
  readonly #jobs = new Map<number, RunningJob>();

  constructor(progress: ProgressReader) {
    this.#progress = progress;
  }

  /** Job `jobId` starts in `slot`. */
  open(slot: number, jobId: number): void {
    this.#jobs.set(slot, { jobId, open: true, committed: -1, pending: new Set() });
  }

  /**
   * A commit request of the job `ticket` names: `send` appends the record and resolves with its
   * decision. A committed record's finished units are stored into the slot before this resolves
   * (the worker's answer).
   */
  request(ticket: CommitTicket, send: () => Promise<ClusterCommitResult>): Promise<ClusterCommitResult> {
    const job = this.#jobs.get(ticket.slot);
    if (job === undefined || job.jobId !== ticket.job || !job.open) {
      return Promise.resolve({ ok: false, reason: 'unavailable', message: 'cluster: the job is no longer running (its worker stopped); the write was not sent' });
    }
    const decided = send().then((result) => {
      if (result.ok) {
        this.#progress.committed(ticket.slot, ticket.done);
        job.committed = ticket.done;
      }
      return result;
    });
    job.pending.add(decided);
    const forget = (): void => {
      job.pending.delete(decided);
    };
    decided.then(forget, forget);
    return decided;
  }

  /**
   * The job of `slot` failed: no further request of it is sent; resolves once every record it
   * sent is decided (a send that rejects counts as decided: it was not acknowledged), with the
   * finished units its last committed record carried (-1: none committed). A record of a job
   * re-run one transaction per call carries the units finished BEFORE its unit: when that equals
   * the unit that was running, the unit is partly committed.
   */
  async close(slot: number): Promise<number> {
    const job = this.#jobs.get(slot);
    if (job === undefined) return -1;
    job.open = false;
    await Promise.allSettled([...job.pending]);
    return job.committed;
  }

  /** The slot is free again. */
  release(slot: number): void {
    this.#jobs.delete(slot);
  }
}
