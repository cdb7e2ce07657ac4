/**
 * @module wire
 * The wire contract shared by the server and the client (`lexicons/client`): the error codes
 * sent next to every `Errors` item, the reserved frame names and the `lexicons.v1` subprotocol.
 * No Node imports and no runtime dependencies: the browser client bundles this file.
 * docs/protocol.md (and /work/notes/protocol-v1.md, the design) describe the frames.
 */

/**
 * Stable machine-readable codes of `Errors` items:
 * `[{"Errors": ["No signal [Nope]"], "code": "UNKNOWN_SIGNAL", "$id": 1}]`.
 * A Signal may also throw its own code (`/^[A-Z][A-Z0-9_]{0,63}$/`), so a client sees these or
 * an app code.
 */
export const WireCode = {
  /** Malformed JSON, wrong frame shape, bad `$id`, binary frame, first v1 frame not `$connect`. */
  PROTOCOL: 'PROTOCOL',
  /** No Signal of that name. */
  UNKNOWN_SIGNAL: 'UNKNOWN_SIGNAL',
  /** Arguments not an object, a reserved argument name, or `static args` rejected a value. */
  BAD_ARGUMENTS: 'BAD_ARGUMENTS',
  /** Subscribing to a channel that does not exist. */
  CHANNEL_NOT_FOUND: 'CHANNEL_NOT_FOUND',
  /** A channel's `authorize` refused the connection (`Not allowed to join [name]`). */
  CHANNEL_FORBIDDEN: 'CHANNEL_FORBIDDEN',
  /** The Signal threw (its message is forwarded; the stack is logged). */
  EXECUTION: 'EXECUTION',
  /** `limits.executionTimeoutMs` exceeded (the call was aborted and rolled back). */
  TIMEOUT: 'TIMEOUT',
  /** The worker running the call crashed or ran out of memory. */
  WORKER_FAILED: 'WORKER_FAILED',
  /** The write-ahead log refused the write (disk full, I/O error); nothing was saved. */
  NOT_SAVED: 'NOT_SAVED',
  /** `limits.messagesPerSecond` or login attempts per address exceeded. */
  RATE_LIMITED: 'RATE_LIMITED',
  /** Too many frames pending for this connection (1024). */
  QUEUE_FULL: 'QUEUE_FULL',
  /** The server is shutting down. */
  SHUTTING_DOWN: 'SHUTTING_DOWN',
  /** The connection was refused by the Headers, the gate or the anonymous policy. */
  AUTH_FAILED: 'AUTH_FAILED',
  /** No live query of that name (`$live`). */
  UNKNOWN_LIVE_QUERY: 'UNKNOWN_LIVE_QUERY',
  /** A live query's result holds more than 1,000 rows or groups, or a connection holds 64 live queries. */
  LIVE_LIMIT: 'LIVE_LIMIT',
  /** A live query's body wrote through `db` (a live query only reads; write in a Signal). */
  LIVE_WRITE: 'LIVE_WRITE',
} as const;
export type WireCode = (typeof WireCode)[keyof typeof WireCode];

/**
 * Frames refused by the server before they are parsed (rate limit, queue full, binary, shutting
 * down) still give each of their calls with `$id` an error item, but only when the frame holds at
 * most this many bytes (a flood of large frames stays cheap to refuse); larger frames get one
 * untagged error item. The client keeps its frames under it.
 */
export const MAX_ID_SCAN_BYTES = 64 * 1024;

/** The WebSocket subprotocol a v1 client asks for (`new WebSocket(url, SUBPROTOCOL)`). */
export const SUBPROTOCOL = 'lexicons.v1';

/** Close code of a subscriber that fell behind (`slowClient: 'disconnect'`): reconnect and recover. */
export const SLOW_CONSUMER_CLOSE = 4008;

/** Reserved names in frames. */
export const Frame = {
  /** A v1 client's first frame: `{"$connect": {"headers": {"Login": {...}}}}`. */
  CONNECT: '$connect',
  /**
   * The server's admission item:
   * `[{"$connected": {"id": "<connection uuid>", "limits": {"maxCallsPerFrame": 100, "maxMessageBytes": 1048576}}}]`.
   */
  CONNECTED: '$connected',
  /** The acknowledgement of a call that sent nothing to its caller: `[{"$ok": true, "$id": 9}]`. */
  OK: '$ok',
  /** A call's correlation id (string or finite number), echoed on every item of its outcome. */
  ID: '$id',
  /** A call's idempotency key: a replay with the same key (same session) gets the first outcome. */
  KEY: '$key',
  /** The offsets of a history-channel item: `{"Public": 17}` (one key per history channel). */
  OFF: '$off',
  /** Server → client on joining a history channel: `{"$subscribed": {channel, epoch, offset, recovered, recovering}}`, then the missed items. */
  SUBSCRIBED: '$subscribed',
  /** Server → client on leaving a history or presence channel: `{"$unsubscribed": {"channel": "Public"}}`. */
  UNSUBSCRIBED: '$unsubscribed',
  /** Client → server: `{"$recover": {"Public": {"epoch": "e1", "offset": 57}}}` after a gap in offsets. */
  RECOVER: '$recover',
  /** Server → client: `{"$presence": {channel, members}}` on join, then `{channel, join, leave}` batches. */
  PRESENCE: '$presence',
  /**
   * Server → client, cluster mode: `{"$missed": {"channel": "Lobby"}}`: publications of that channel
   * (one without history) may not have reached this node (Redis was unreachable, or its fan-out
   * stream was trimmed past this node): refetch what the channel shows (docs/cluster.md).
   */
  MISSED: '$missed',
  /**
   * Client → server: `{"$live": {"id": "L1", "name": "NewestMessages", "args": {...}}}` subscribes;
   * server → client: `{"$live": {"id": "L1", "at": 42, ...}}` items (docs/live-queries.md).
   */
  LIVE: '$live',
  /** Client → server: `{"$unlive": {"id": "L1"}}` ends a live query. */
  UNLIVE: '$unlive',
  /** Name of an error item: `{"Errors": ["message"], "code": "...", "$id": 9}`. */
  ERRORS: 'Errors',
  /** Key of an error item's {@link WireCode}. */
  CODE: 'code',
} as const;
