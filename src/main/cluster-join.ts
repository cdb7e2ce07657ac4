/**
 * @module main/cluster-join
 * Cluster mode's start (main/runtime.ts): the node's port answers `catching-up` while the node
 * connects to Redis and catches up (main/catch-up-listener.ts), its data folder opened (or
 * replaced by the published snapshot when below what the stream keeps), the node caught up.
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

/**
 * Cluster mode: the data folder opened by `open` and the node, caught up (main/cluster.ts, loaded
 * only then, with ioredis). A folder below what the commit stream keeps (down past its trim, or
 * new to a trimmed stream) gets the published snapshot installed first, and is opened again.
 */
export async function joinCluster(settings: RunSettings, open: () => Promise<{ store: SharedStore; wal: Wal }>, log: LogFn, uws: Uws, startedAt: number): Promise<{ store: SharedStore; wal: Wal; cluster: ClusterNode; early: CatchUpListener }> {
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
  let opened: { store: SharedStore; wal: Wal } | null = null;
  try {
    opened = await open();
    for (let attempt = 1; ; attempt++) {
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
      const snapshot = await node.installSnapshot(settings.options.data);
      log('START', { cluster: node.nodeId, message: 'installed the published snapshot (this node was below what the commit stream keeps)', seq: snapshot.seq, from: snapshot.node });
      opened = await open();
    }
    return { ...opened, cluster: node, early };
  } catch (err) {
    early.close();
    await opened?.wal.close(); // frees the data folder
    await node.stop();
    throw err;
  }
}

