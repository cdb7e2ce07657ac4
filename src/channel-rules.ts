/**
 * @module channel-rules
 * The rules Channel classes declare (`static history`, `presence`, `slowClient`, `authorize`,
 * `pattern`), checked once when the Server is built, and resolved per channel name on both
 * threads: the main thread (ordered delivery, recovery, presence, slow-client policy) and every
 * worker (history policy of the store, `authorize`). docs/channels.md describes them.
 *
 * Resolution: a declared channel's own class (exact name); else the first class whose `pattern`
 * matches the name (`*` matches any run of characters, everything else is literal); else none
 * (today's behaviour: no history, no presence, disconnect slow clients, anyone may join).
 */
import type { Channel, ChannelAuthContext, ChannelHistory, SlowClientPolicy } from './components.js';
import { componentName } from './components.js';
import { ErrorCode, LexiconsError } from './errors.js';

/** What one channel name resolves to. */
export interface ChannelRule {
  /** The class that gave the rule (its name, or its pattern for a family). */
  readonly source: string;
  readonly history: ChannelHistory | null;
  readonly presence: boolean;
  readonly slowClient: SlowClientPolicy;
  readonly authorize: ((context: ChannelAuthContext) => boolean | Promise<boolean>) | undefined;
}

/** The rule of a channel no class speaks for. */
export const DEFAULT_RULE: ChannelRule = { source: '', history: null, presence: false, slowClient: 'disconnect', authorize: undefined };

type ChannelClass = typeof Channel;

function optionError(message: string): LexiconsError {
  return new LexiconsError(ErrorCode.OPTION, message);
}

/** `room:*` as a matcher: `*` is any run of characters (also none), the rest literal. */
export function patternMatcher(pattern: string): (name: string) => boolean {
  const source = pattern
    .split('*')
    .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
    .join('.*');
  const re = new RegExp(`^${source}$`, 's');
  return (name) => re.test(name);
}

/** The checked rule of a Channel class (exact messages: test/server/channels-options.test.ts). */
export function ruleOf(cls: ChannelClass): ChannelRule {
  const name = componentName(cls);
  const where = `Channel ${name}`;
  const { history, presence, slowClient, authorize } = cls;
  let policy: ChannelHistory | null = null;
  if (history !== undefined) {
    if (typeof history !== 'object' || history === null || Array.isArray(history)) throw optionError(`${where}: history must be { size?, maxAgeSeconds? }, got ${JSON.stringify(history)}`);
    for (const key of Object.keys(history)) if (key !== 'size' && key !== 'maxAgeSeconds') throw optionError(`${where}: history.${key} is not a history setting (size, maxAgeSeconds)`);
    const { size, maxAgeSeconds } = history;
    if (size === undefined && maxAgeSeconds === undefined) throw optionError(`${where}: history needs size and/or maxAgeSeconds`);
    if (size !== undefined && (!Number.isSafeInteger(size) || size < 1)) throw optionError(`${where}: history.size must be a positive integer, got ${JSON.stringify(size)}`);
    if (maxAgeSeconds !== undefined && (typeof maxAgeSeconds !== 'number' || !Number.isFinite(maxAgeSeconds) || maxAgeSeconds <= 0)) {
      throw optionError(`${where}: history.maxAgeSeconds must be a positive number, got ${JSON.stringify(maxAgeSeconds)}`);
    }
    policy = Object.freeze({ ...(size !== undefined ? { size } : {}), ...(maxAgeSeconds !== undefined ? { maxAgeSeconds } : {}) });
  }
  if (presence !== undefined && typeof presence !== 'boolean') throw optionError(`${where}: presence must be true or false, got ${JSON.stringify(presence)}`);
  if (slowClient !== undefined && slowClient !== 'disconnect' && slowClient !== 'drop') throw optionError(`${where}: slowClient must be 'disconnect' or 'drop', got ${JSON.stringify(slowClient)}`);
  if (authorize !== undefined && typeof authorize !== 'function') throw optionError(`${where}: authorize must be a function ({ db, ws, channel }) => boolean`);
  return {
    source: name,
    history: policy,
    presence: presence === true,
    slowClient: slowClient ?? 'disconnect',
    authorize: authorize === undefined ? undefined : authorize.bind(cls),
  };
}

/** Checks a class's `pattern` (undefined: it declares a channel of its own name). */
export function patternOf(cls: ChannelClass): string | undefined {
  const pattern = cls.pattern;
  if (pattern === undefined) return undefined;
  if (typeof pattern !== 'string' || pattern === '' || pattern.length > 256) {
    throw optionError(`Channel ${componentName(cls)}: pattern must be a non-empty string of at most 256 characters with * wildcards (e.g. 'room:*'), got ${JSON.stringify(pattern)}`);
  }
  return pattern;
}

/** Names resolved and cached; a cache over this many run-time names starts again. */
const CACHE_LIMIT = 10_000;

/** The rules of an app's Channel classes, resolved per channel name. */
export class ChannelRules {
  /** Channels declared by name (classes without a `pattern`). */
  readonly declared: readonly string[];
  readonly #exact = new Map<string, ChannelRule>();
  readonly #patterns: Array<{ match: (name: string) => boolean; rule: ChannelRule }> = [];
  readonly #cache = new Map<string, ChannelRule>();
  /** Some class keeps history (the store needs the history tables). */
  readonly anyHistory: boolean;
  /** Some class tracks presence. */
  readonly anyPresence: boolean;

  constructor(classes: Iterable<ChannelClass>) {
    const declared: string[] = [];
    let history = false;
    let presence = false;
    for (const cls of classes) {
      const rule = ruleOf(cls);
      const pattern = patternOf(cls);
      history ||= rule.history !== null;
      presence ||= rule.presence;
      if (pattern === undefined) {
        declared.push(rule.source);
        this.#exact.set(rule.source, rule);
      } else this.#patterns.push({ match: patternMatcher(pattern), rule: { ...rule, source: pattern } });
    }
    this.declared = declared;
    this.anyHistory = history;
    this.anyPresence = presence;
  }

  /** The rule of a channel name ({@link DEFAULT_RULE} when no class speaks for it). */
  rule(name: string): ChannelRule {
    const exact = this.#exact.get(name);
    if (exact !== undefined) return exact;
    if (this.#patterns.length === 0) return DEFAULT_RULE;
    let rule = this.#cache.get(name);
    if (rule !== undefined) return rule;
    rule = this.#patterns.find((p) => p.match(name))?.rule ?? DEFAULT_RULE;
    if (this.#cache.size >= CACHE_LIMIT) this.#cache.clear();
    this.#cache.set(name, rule);
    return rule;
  }

  /** The store's history policy resolver (`store.historyPolicy`): the rule's history, or null. */
  readonly historyPolicy = (name: string): ChannelHistory | null => this.rule(name).history;
}
