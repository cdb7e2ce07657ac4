/**
 * The chat example's web page (bundled by `npm run build` into dist/examples/chat/web/app.js):
 * registers or logs in (credentials in the `$connect` frame, never in the URL), joins Public
 * (a replayed Subscribe, so it is joined again after every reconnect), shows the history
 * (GetChatList when it joins, and again only when the client reports the channel `stale`: after a
 * reconnect the missed messages are recovered from Public's history), who is online (Public's
 * presence), posts and receives, and shows the connection state and errors. Typed from the server's own definitions: `typeof server` is a
 * type-only import, nothing of the server is bundled.
 */
import { ClientError, createClient, WireCode, type ChannelEvent, type Client, type StateEvent } from '../../../src/client/index.js';
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
const postForm = element<HTMLFormElement>('post');
const chatError = element<HTMLParagraphElement>('chat-error');
const stateBadge = element<HTMLSpanElement>('state');
const logout = element<HTMLButtonElement>('logout');

let client: Client<typeof server> | undefined;
/** The logged-in user's pk (from the Login/Register item the Headers send). */
let me: string | undefined;
const shown = new Map<string, HTMLLIElement>();

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

function isMessage(value: unknown): value is Message {
  const m = value as Partial<Message> | null;
  return typeof m === 'object' && m !== null && typeof m.pk === 'string' && typeof m.content === 'string' && typeof m.timestamp === 'number';
}

/** Adds (or keeps) a message, in timestamp order. */
function render(message: Message): void {
  if (message.channel !== CHANNEL || shown.has(message.pk)) return;
  const item = document.createElement('li');
  item.dataset.timestamp = String(message.timestamp);
  item.classList.toggle('mine', message.author === me);
  const meta = document.createElement('div');
  meta.className = 'meta';
  const who = message.author === me ? 'you' : `user ${(message.author ?? 'unknown').slice(0, 8)}`;
  meta.textContent = `${who} · ${new Date(message.timestamp * 1000).toLocaleTimeString()}`;
  const content = document.createElement('p');
  content.className = 'content';
  content.textContent = message.content;
  item.append(meta, content);
  const after = [...list.children].find((li) => Number((li as HTMLElement).dataset.timestamp) > message.timestamp);
  list.insertBefore(item, after ?? null);
  shown.set(message.pk, item);
  list.scrollTop = list.scrollHeight;
}

/** Shows Public's members (their `ws.meta`: `{ email }`, set by the Headers), one line per email. */
function renderMembers(current: Client<typeof server>): void {
  const emails = new Set(current.presence(CHANNEL).map((m) => String((m.meta as { email?: unknown } | null)?.email ?? m.id)));
  members.replaceChildren(...[...emails].sort().map((email) => Object.assign(document.createElement('li'), { textContent: email })));
}

/** Public's history events: fetch the list on a fresh join or when the missed messages are lost. */
function onChannel(current: Client<typeof server>, event: ChannelEvent): void {
  if (current !== client || event.channel !== CHANNEL) return;
  if (event.type === 'presence') renderMembers(current);
  else if (event.type === 'stale' || (event.type === 'subscribed' && !event.wasRecovering)) void loadHistory(current);
  else if (event.type === 'unsubscribed') members.replaceChildren();
}

async function loadHistory(current: Client<typeof server>): Promise<void> {
  try {
    const reply = await current.call('GetChatList', { channel: CHANNEL, limit: 100 });
    const messages = (reply as { messages?: unknown } | undefined)?.messages;
    if (Array.isArray(messages)) messages.filter(isMessage).forEach(render);
  } catch (err) {
    show(chatError, `History: ${err instanceof Error ? err.message : String(err)}`);
  }
}

function start(action: 'Login' | 'Register', email: string, password: string): void {
  client?.close();
  me = undefined;
  shown.clear();
  list.replaceChildren();
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
  current.on('CreateChatMessage', render); // own messages too: they arrive once, as the call's reply
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
