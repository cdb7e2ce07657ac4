/**
 * The chat example server: the seed's "Installing components to server", in TypeScript.
 * Run it with `npm start` (or `node dist/examples/chat/main.js`, or
 * `lexicons start dist/examples/chat/main.js --workers 4`).
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ChannelManager, HeaderManager, LiveQueryManager, ModelManager, Server, SignalManager, TaskManager } from '../../src/index.js';
import { Public } from './channels.js';
import { Login, Register } from './headers.js';
import { ChatLog, ChatStats } from './live.js';
import { ChatMessage, User } from './models.js';
import { CreateChatMessage, GetChatList, Subscribe } from './signals.js';
import { OnShutdown } from './tasks.js';

// Keyed by name, the managers keep the components' names and types: the web page's client is
// `createClient<typeof server>` (examples/chat/web/app.ts).
const headers = new HeaderManager({ Login, Register });
const models = new ModelManager(User, ChatMessage);
const signals = new SignalManager({ Subscribe, CreateChatMessage, GetChatList });
const tasks = new TaskManager(OnShutdown);
const channels = new ChannelManager(Public);
const live = new LiveQueryManager({ ChatLog, ChatStats });

// The web page (web/, bundled next to this module by `npm run build`) at http://localhost:5000/.
const web = fileURLToPath(new URL('./web/', import.meta.url));
const built = existsSync(new URL('./web/app.js', import.meta.url));

export const server = new Server({
  protocol: 'ws',
  host: 'localhost',
  port: 5000,
  models,
  tasks,
  signals,
  headers,
  channels,
  live,
  data: 'data/',
  trust: [],
  static: built ? web : undefined,
});

server.runIfMain(import.meta.url);
