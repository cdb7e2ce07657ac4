/**
 * The chat example's live queries (docs/live-queries.md): the web page's message list is
 * `ChatLog` (the newest messages of a channel, kept current by the server: no "list" Signal, no
 * refetch after a reconnect), and its header counts messages per author with `ChatStats` (an
 * aggregate with a group-by). Only logged-in connections may watch (authorization in the query).
 */
import { LiveQuery, SignalError, field, live, type LiveContext } from '../../src/index.js';
import { ChatMessage } from './models.js';

function loggedIn(ws: LiveContext['ws']): void {
  if (ws.auth === null || ws.auth === undefined) throw new SignalError('FORBIDDEN', 'log in to read the chat');
}

export class ChatLog extends LiveQuery {
  static override args = { channel: field.str(), limit: field.int({ default: 100 }) };

  query({ channel, limit, ws }: LiveContext<typeof ChatLog>) {
    loggedIn(ws);
    // A top-k through the channel index: re-read only when a message of this channel is written.
    return live.rows(ChatMessage, { channel }, { orderBy: '-timestamp', limit: Math.min(Math.max(limit, 1), 1000) });
  }
}

export class ChatStats extends LiveQuery {
  static override args = { channel: field.str() };

  query({ channel, ws }: LiveContext<typeof ChatStats>) {
    loggedIn(ws);
    return live.aggregate(ChatMessage, { channel }, { groupBy: 'author', values: { messages: live.count() } });
  }
}
