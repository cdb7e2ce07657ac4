/** The chat example's Task: the seed's OnShutdown (runs on SIGINT/SIGTERM before the CSV save). */
import { Task, type TaskContext } from '../../src/index.js';
import { ChatMessage } from './models.js';

export class OnShutdown extends Task.Shutdown {
  override priority = 0;

  execute({ db }: TaskContext): void {
    // A place for last writes before the tables are saved; here: drop empty messages.
    db.drop(ChatMessage, { content: '' });
  }
}
