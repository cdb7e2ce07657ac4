/**
 * @module storage/snapshot-thread
 * Entry of the thread that writes binary snapshot files (see snapshot-files.ts): it writes each
 * job it receives and answers with the files' sizes and CRCs, or the error.
 */
import { parentPort } from 'node:worker_threads';
import { toLexiconsError } from '../errors.js';
import { writeSnapshotJob, type SnapshotAnswer, type SnapshotRequest, type SnapshotThreadResult } from './snapshot-files.js';

parentPort!.on('message', ({ id, job }: SnapshotRequest) => {
  let result: SnapshotThreadResult;
  try {
    result = { ok: true, tables: writeSnapshotJob(job) };
  } catch (err) {
    result = { ok: false, error: toLexiconsError(err).toJSON() };
  }
  parentPort!.postMessage({ id, result } satisfies SnapshotAnswer);
});
