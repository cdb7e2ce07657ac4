/**
 * @module storage/snapshot-thread
 * Entry of the thread that writes a binary snapshot's files (see snapshot-files.ts): it writes
 * the job of its workerData and posts the result (or the error) once, then exits.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { toLexiconsError } from '../errors.js';
import { writeSnapshotJob, type SnapshotJob, type SnapshotThreadResult } from './snapshot-files.js';

let result: SnapshotThreadResult;
try {
  result = { ok: true, tables: writeSnapshotJob(workerData as SnapshotJob) };
} catch (err) {
  result = { ok: false, error: toLexiconsError(err).toJSON() };
}
parentPort!.postMessage(result);
