/**
 * @module main/cluster-join
 * Cluster mode's start (main/runtime.ts): the node's port answers `catching-up` while the node
 * connects to Redis and catches up (main/catch-up-listener.ts), its data folder opened (or
 * replaced by the published snapshot when below what the stream keeps, or rebuilt from the
 * cluster when its channel history is damaged), the node caught up.
 */
import { ErrorCode, LexiconsError } from '../errors.js';
import type { SharedStore } from '../storage/store.js';
import type { Wal } from '../storage/wal.js';
import type { RunSettings } from '../server.js';
import type { ClusterNode } from './cluster.js';
import { StreamGap } from './cluster-registry.js';
import { listenWhileCatchingUp, type CatchUpListener } from './catch-up-listener.js';
import type { LogFn } from './log.js';
import type { Uws } from './uws.js';

/** A data folder opened in cluster mode: its history checked, not repaired (recovery.ts `history: 'check'`). */
export interface CheckedFolder {
  readonly store: SharedStore;
  readonly wal: Wal;
  /** Channels whose history a local repair would change (a new epoch: the folder is no replica then). */
  readonly historyDamaged: readonly string[];
}

/**
 * Cluster mode: the data folder opened by `open` and the node, caught up (main/cluster.ts, loaded
 * only then, with ioredis). A folder below what the commit stream keeps (down past its trim, or
 * new to a trimmed stream) gets the published snapshot installed first, and is opened again. A
 * folder whose channel history is damaged is not repaired locally (a local commit outside the
 * stream: new epochs no other node has) but rebuilt from the cluster: its files move to
 * `replaced-by-rejoin/`, then the published snapshot is installed or the stream read from its start.
 */
export async function joinCluster(settings: RunSettings, open: () => Promise<CheckedFolder>, log: LogFn, uws: Uws, startedAt: number): Promise<{ store: SharedStore; wal: Wal; cluster: ClusterNode; early: CatchUpListener }> {
  const { ClusterNode } = await import('./cluster.js');
  const { options } = settings;
  let connected: ClusterNode | undefined;
  const early = await listenWhileCatchingUp(uws, { host: options.host, port: options.port, tls: options.tls ?? null, nodeId: options.cluster!.nodeId, startedAt }, () => connected?.view(), log);
  let node: ClusterNode;
  try {
    node = connected = await ClusterNode.connect({ ...options.cluster!, log });
  } catch (err) {
    early.close();
    throw err;
  }
  let opened: CheckedFolder | null = null;
  let rebuilt = false;
  try {
    opened = await open();
    if (opened.historyDamaged.length > 0) {
      const channels = opened.historyDamaged;
      await opened.wal.close(); // frees the data folder
      opened = null;
      const { aside, snapshot } = await node.rebuild(options.data);
      rebuilt = true;
      const from = snapshot ? `installed the published snapshot (record ${snapshot.seq}, from ${snapshot.node})` : 'reading the commit stream from its start';
      log('START', { cluster: node.nodeId, message: `channel history damaged in the data folder (${channels.join(', ')}): rebuilt the folder from the cluster instead of repairing it locally (new epochs the other nodes do not have); its old files are in ${aside}; ${from}`, channels, replaced: aside, ...(snapshot ? { seq: snapshot.seq, from: snapshot.node } : {}) });
      opened = await open();
    }
    for (let attempt = 1; ; attempt++) {
      // Only a folder rebuilt from the cluster gets here damaged: the published snapshot's history is.
      if (opened.historyDamaged.length > 0) throw new LexiconsError(ErrorCode.IO, `cluster: the data folder rebuilt from the cluster has damaged channel history too (${opened.historyDamaged.join(', ')}): the published snapshot is inconsistent; the node does not start`);
      try {
        // Trimmed past the folder: before the start, or during the catch-up (a race with the trim).
        if (!(await node.behind(opened.store))) {
          await node.start(opened.store);
          break;
        }
      } catch (err) {
        if (!(err instanceof StreamGap)) throw err;
      }
      if (attempt > 3) throw new LexiconsError(ErrorCode.IO, 'cluster: the commit stream was trimmed past the published snapshot again after 3 installs; the node cannot catch up');
      await opened.wal.close(); // frees the data folder
      opened = null;
      // After a rebuild, `replaced-by-rejoin/` keeps the damaged folder's files (not the rebuild's).
      const snapshot = await node.installSnapshot(options.data, rebuilt);
      log('START', { cluster: node.nodeId, message: 'installed the published snapshot (this node was below what the commit stream keeps)', seq: snapshot.seq, from: snapshot.node });
      opened = await open();
    }
    return { store: opened.store, wal: opened.wal, cluster: node, early };
  } catch (err) {
    early.close();
    await opened?.wal.close(); // frees the data folder
    await node.stop();
    throw err;
  }
}
