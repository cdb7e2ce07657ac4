/**
 * @module bench/loadgen/child
 * Entry of one generator process (forked by driver.ts): runs a {@link LoadProcess} through the
 * driver's commands (setup, go, mark, stop, collect, exit) and reports over IPC.
 */
import type { Command, Report } from './job.js';
import { LoadProcess } from './load-process.js';

let lp: LoadProcess | null = null;

function report(message: Report): void {
  process.send!(message);
}

function fail(error: unknown): void {
  report({ type: 'failed', message: error instanceof Error ? error.message : String(error) });
}

async function handle(command: Command): Promise<void> {
  switch (command.type) {
    case 'setup': {
      lp = new LoadProcess(command.job);
      const { connected, registered } = await lp.setup();
      report({ type: 'ready', connected, registered });
      break;
    }
    case 'go':
      lp!.go();
      break;
    case 'mark':
      lp!.mark();
      break;
    case 'stop': {
      const { window, sent } = await lp!.stop();
      report({ type: 'stopped', window, sent });
      break;
    }
    case 'collect': {
      const totals = await lp!.collect(command.expectedPerConn);
      report({ type: 'final', totals });
      break;
    }
    case 'exit':
      await lp?.close();
      process.disconnect();
      break;
  }
}

if (process.send === undefined) throw new Error('bench/loadgen/child.js runs only as a forked child of driver.js');
process.on('message', (command: Command) => {
  handle(command).catch(fail);
});
// The driver going away ends this process: never leave load running without a parent.
process.on('disconnect', () => {
  void (lp?.close() ?? Promise.resolve()).finally(() => process.exit(0));
});
