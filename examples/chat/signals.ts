/**
 * The chat example's Signals: subscribe to a channel, post to it, read its history.
 * `SignalContext<typeof X>` gives `execute` the arguments X's `static args` declare (defaults
 * filled in), so they are written once; the web page's client is typed from them too.
 */
import { Signal, field, type SignalContext } from '../../src/index.js';
import { ChatMessage } from './models.js';

export class Subscribe extends Signal {
  static override args = { channel: field.str() };

  execute({ channel, ws }: SignalContext<typeof Subscribe>) {
    ws.subscribe(channel);
    ws.send([{ Subscribe: { channel } }]);
  }
}

export class CreateChatMessage extends Signal {
  static override args = { channel: field.str(), content: field.str() };

  execute({ channel, content, db, ws }: SignalContext<typeof CreateChatMessage>) {
    if (!ws.channels.includes(channel)) throw new Error(`Subscribe to ${channel} before posting to it`);
    if (content.trim() === '') throw new Error('content must not be empty');
    // Seconds with microseconds, so messages of one frame keep their order in the history.
    const timestamp = (performance.timeOrigin + performance.now()) / 1000;
    const message = db.create(ChatMessage, { channel, content, author: ws.auth as string, timestamp });
    return this.response(message.toDict(), [channel]);
  }
}

export class GetChatList extends Signal {
  static override args = { channel: field.str(), limit: field.int({ default: 100 }) };

  execute({ channel, limit, db, ws }: SignalContext<typeof GetChatList>) {
    // The newest `limit` messages: `_sort` + `_limit` runs as a bounded top-k (docs/storage.md
    // "Query plans"): the channel index, one timestamp read per message. `queryJson` writes the
    // `limit` rows as JSON text straight from the columns (no record objects): they only go to the
    // reply. Answered oldest first (ascending timestamp), as a chat window shows them.
    const latest = db.queryJson(ChatMessage, { channel, _sort: '-timestamp', _limit: Math.min(Math.max(limit, 1), 1000) });
    ws.send([{ GetChatList: { channel, messages: latest.reverse() } }]);
  }
}
