/**
 * The chat example's channel: every logged-in client may subscribe to Public. It remembers its
 * last 1000 messages (a reconnecting client gets what it missed, in order, see docs/channels.md)
 * and tracks who is online (each member's public `ws.meta`, set by the Headers: the email).
 */
import { Channel } from '../../src/index.js';

export class Public extends Channel {
  static override history = { size: 1000 };
  static override presence = true;
}
