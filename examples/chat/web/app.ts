/**
 * The chat example's web page (bundled by `npm run build` into dist/examples/chat/web/app.js):
 * registers or logs in (credentials in the `$connect` frame, never in the URL), joins Public
 * (a replayed Subscribe, so it is joined again after every reconnect), shows the newest messages
 * as a live query (`ChatLog`: the server keeps the list current, and a reconnect gets it whole
 * again) with the messages per author (`ChatStats`, an aggregate), who is online (Public's
 * presence), posts, and shows the connection state and errors. Typed from the server's own definitions: `typeof server` is a
 * type-only import, nothing of the server is bundled.
 */
import { ClientError, createClient, WireCode, type ChannelEvent, type Client, type LiveEvent, type StateEvent } from '../../../src/client/index.js';
import type { server } from '../main.js';

const CHANNEL = 'Public';

/** A message as the server sends it (ChatMessage.toDict()). */
interface Message {
  pk: string;
  author: string | null;
  channel: string;
  content: string;
  timestamp: number;
}

function element<T extends HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (!found) throw new Error(`#${id} is missing from index.html`);
  return found as T;
}

const loginForm = element<HTMLFormElement>('login');
const loginError = element<HTMLParagraphElement>('login-error');
const chat = element<HTMLElement>('chat');
const list = element<HTMLOListElement>('messages');
const members = element<HTMLUListElement>('members');
const stats = element<HTMLParagraphElement>('stats');
const postForm = element<HTMLFormElement>('post');
const chatError = element<HTMLParagraphElement>('chat-error');
const stateBadge = element<HTMLSpanElement>('state');
const logout = element<HTMLButtonElement>('logout');

let client: Client<typeof server> | undefined;
/** The logged-in user's pk (from the Login/Register item the Headers send). */
let me: string | undefined;

function show(target: HTMLElement, text: string | undefined): void {
  target.textContent = text ?? '';
  target.hidden = !text;
}

function describeState(event: StateEvent): string {
  switch (event.state) {
    case 'connecting':
      return event.attempt === 0 ? 'connecting…' : `reconnecting (attempt ${event.attempt})…`;
    case 'open':
      return 'connected';
    case 'disconnected':
      return `disconnected (${event.code}); retrying in ${(event.delayMs / 1000).toFixed(1)} s`;
    case 'closed':
      return event.error ? `closed: ${event.error.code}` : 'closed';
  }
}

/** One message as a list item. */
function messageItem(message: Message): HTMLLIElement {
  const item = document.createElement('li');
  item.classList.toggle('mine', message.author === me);
  const meta = document.createElement('div');
  meta.className = 'meta';
  const who = message.author === me ? 'you' : `user ${(message.author ?? 'unknown').slice(0, 8)}`;
  meta.textContent = `${who} · ${new Date(message.timestamp * 1000).toLocaleTimeString()}`;
  const content = document.createElement('p');
  content.className = 'content';
  content.textContent = message.content;
  item.append(meta, content);
  return item;
}

/** The list as the live query holds it (newest first): shown oldest first, as a chat window does. */
function renderLog(messages: readonly Message[]): void {
  list.replaceChildren(...[...messages].reverse().map(messageItem));
  list.scrollTop = list.scrollHeight;
}

/** Messages per author (the `ChatStats` groups). */
function renderStats(groups: Readonly<Record<string, { messages: number | null }>>): void {
  const counts = Object.values(groups).map((g) => g.messages ?? 0);
  const total = counts.reduce((a, b) => a + b, 0);
  stats.textContent = `${total} message${total === 1 ? '' : 's'} from ${counts.length} ${counts.length === 1 ? 'person' : 'people'}`;
}

function liveError(event: LiveEvent): void {
  if (event.type === 'error') show(chatError, `${event.error.code}: ${event.error.message}`);
}

/** Shows Public's members (their `ws.meta`: `{ email }`, set by the Headers), one line per email. */
function renderMembers(current: Client<typeof server>): void {
  const emails = new Set(current.presence(CHANNEL).map((m) => String((m.meta as { email?: unknown } | null)?.email ?? m.id)));
  members.replaceChildren(...[...emails].sort().map((email) => Object.assign(document.createElement('li'), { textContent: email })));
}

/** Public's presence events. */
function onChannel(current: Client<typeof server>, event: ChannelEvent): void {
  if (current !== client || event.channel !== CHANNEL) return;
  if (event.type === 'presence') renderMembers(current);
  else if (event.type === 'unsubscribed') members.replaceChildren();
}

function start(action: 'Login' | 'Register', email: string, password: string): void {
  client?.close();
  me = undefined;
  list.replaceChildren();
  stats.textContent = '';
  members.replaceChildren();
  show(loginError, undefined);
  show(chatError, undefined);
  let admitted = false;
  const current = createClient<typeof server>({
    url: `${location.origin.replace(/^http/, 'ws')}/`,
    // Register on the first connection only; every reconnect logs in.
    headers: () => (action === 'Register' && !admitted ? { Register: { email, password } } : { Login: { email, password } }),
  });
  client = current;
  current.on('Login', (payload) => (me = (payload as { pk?: string }).pk));
  current.on('Register', (payload) => (me = (payload as { pk?: string }).pk));
  current.onChannel((event) => onChannel(current, event));
  current.onState((event) => {
    if (current !== client) return;
    stateBadge.dataset.state = event.state;
    stateBadge.textContent = describeState(event);
    if (event.state === 'open') {
      admitted = true;
      loginForm.hidden = true;
      chat.hidden = false;
      logout.hidden = false;
      show(chatError, undefined);
    } else if (event.state === 'closed' && event.error) {
      const refused = event.error.code === WireCode.AUTH_FAILED;
      if (refused || !admitted) {
        loginForm.hidden = false;
        chat.hidden = true;
        logout.hidden = true;
        show(loginError, event.error.message);
      } else show(chatError, event.error.message);
    }
  });
  // The message list and the counts: live queries, subscribed again after every reconnect.
  const log = current.live('ChatLog', { channel: CHANNEL, limit: 100 });
  log.on((event) => (event.type === 'error' ? liveError(event) : renderLog(log.rows)));
  const counts = current.live('ChatStats', { channel: CHANNEL });
  counts.on((event) => (event.type === 'error' ? liveError(event) : renderStats(counts.groups)));
  current.call('Subscribe', { channel: CHANNEL }, { replay: true }).catch((err: unknown) => {
    if (err instanceof ClientError && err.code !== WireCode.AUTH_FAILED) show(chatError, `Subscribe: ${err.message}`);
  });
}

loginForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const data = new FormData(loginForm);
  const submitter = (event as SubmitEvent).submitter as HTMLButtonElement | null;
  start(submitter?.value === 'Register' ? 'Register' : 'Login', String(data.get('email')), String(data.get('password')));
});

postForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const input = postForm.elements.namedItem('content') as HTMLInputElement;
  const content = input.value;
  if (!client || content.trim() === '') return;
  const button = postForm.querySelector('button')!;
  button.disabled = true;
  client
    .call('CreateChatMessage', { channel: CHANNEL, content })
    .then(() => {
      input.value = '';
      show(chatError, undefined);
    })
    .catch((err: unknown) => show(chatError, err instanceof ClientError ? `${err.code}: ${err.message}` : String(err)))
    .finally(() => (button.disabled = false));
});

logout.addEventListener('click', () => {
  client?.close();
  client = undefined;
  loginForm.hidden = false;
  chat.hidden = true;
  logout.hidden = true;
  stateBadge.dataset.state = 'disconnected';
  stateBadge.textContent = 'not connected';
});
