/**
 * @module typing
 * Types inferred from component definitions, so nothing is written twice: a Signal's (or a
 * Header's) `static args` give the arguments `execute` receives ({@link InferArgs}) and the ones a
 * client sends ({@link InputArgs}); `this.response(payload)` gives a call's reply type
 * ({@link ReplyOf}). Used by the server side (`SignalContext<typeof MySignal>`, the managers'
 * checks) and by the client (`createClient<typeof server>`).
 *
 * Type-only, and free of Node types: the browser client's declarations import it.
 *
 * @example
 * const args = { channel: field.str(), limit: field.int({ default: 100 }) };
 * type Received = InferArgs<typeof args>; // { channel: string; limit: number }
 * type Sent = InputArgs<typeof args>;     // { channel: string; limit?: number }
 */
import type { Field, FieldValues } from './storage/schema.js';

/** `static args` of a Signal or Header: argument name → field declaration. */
export type ArgFields = Record<string, Field<any, any, any>>;

/** The arguments `execute` receives: every declared argument (defaults filled in, null for a missing nullable one). */
export type InferArgs<F> = FieldValues<F>;

/** Whether a client may leave the argument out: it has a default, or null is a legal value. */
type Omittable<F> = F extends Field<infer T, any, infer D> ? ([D] extends [true] ? true : null extends T ? true : false) : false;

type ValueOf<F> = F extends Field<infer T, any, any> ? T : never;

/** Flattens an intersection for readable hovers and error messages. */
export type Simplify<T> = { [K in keyof T]: T[K] } & {};

/** The arguments a client sends: arguments with a default, and nullable ones, may be omitted. */
export type InputArgs<F> = Simplify<
  { -readonly [K in keyof F as Omittable<F[K]> extends true ? never : K]: ValueOf<F[K]> } & {
    -readonly [K in keyof F as Omittable<F[K]> extends true ? K : never]?: ValueOf<F[K]>;
  }
>;

/** Any Signal or Header class, structurally (a constructor whose instances have `execute`). */
export type ComponentClass = abstract new (...args: any) => { execute(...args: any): unknown };

/** A Signal class, structurally: its instances also have `response`. */
export type SignalLike = abstract new (...args: any) => { execute(...args: any): unknown; response(...args: any): unknown };

/** A Header class, structurally: `execute` answers whether it admits the connection. */
export type HeaderLike = abstract new (...args: any) => { execute(...args: any): boolean | Promise<boolean> };

/** Whether C declares its own `static args` (the base class's optional one does not count). */
type DeclaresArgs<C> = C extends { args?: unknown } ? ([undefined] extends [C['args']] ? false : true) : false;

/** The arguments `execute` of component class C receives (any object when C declares no `static args`). */
export type ArgsOf<C> = DeclaresArgs<C> extends true ? InferArgs<C extends { args?: infer F } ? NonNullable<F> : never> : Record<string, unknown>;

/** The arguments a client sends to component class C (any object when C declares no `static args`). */
export type InputOf<C> = DeclaresArgs<C> extends true ? InputArgs<C extends { args?: infer F } ? NonNullable<F> : never> : Record<string, unknown>;

/** What `this.response(payload, channels)` returns, structurally. */
interface ResponseLike {
  readonly payload: unknown;
  readonly channels: readonly string[];
}

type PayloadOf<R> = [Extract<R, ResponseLike>] extends [never] ? unknown : Extract<R, ResponseLike>['payload'] | undefined;

/**
 * The reply of a call to Signal class C: the payload of `this.response(payload)` when `execute`
 * returns one (or undefined: the caller gets its copy only when it is in one of the channels),
 * else `unknown` (a reply sent with `ws.send` is not inferred).
 */
export type ReplyOf<C> = C extends abstract new (...args: any) => { execute(...args: any): infer R } ? PayloadOf<Awaited<R>> : unknown;

/** Components keyed by name (`new SignalManager({ A, B })`, a module namespace) or listed (`new SignalManager(A, B)`). */
export type ComponentSet<C> = Readonly<Record<string, C>> | readonly C[];

/**
 * The named components of a set: a record keyed by name gives its keys; a positional list (whose
 * class names TypeScript cannot see) or an untyped set gives `undefined` (untyped).
 */
export type NamedComponents<S, Like> = S extends readonly unknown[]
  ? undefined
  : string extends keyof S
    ? undefined
    : { [K in keyof S as K extends string ? (S[K] extends Like ? K : never) : never]: S[K] };
