/**
 * `static args` of Signals and Headers (src/workers/args.ts): declared arguments are checked and
 * transformed, defaults filled, nullable ones default to null, undeclared ones pass through, and
 * a wrong argument is a BAD_ARGUMENTS error naming it.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ErrorCode, isLexiconsError } from '../../src/errors.js';
import { field } from '../../src/storage/schema.js';
import { checkArgs, compileArgs } from '../../src/workers/args.js';

describe('checkArgs', () => {
  const spec = compileArgs('CreateChatMessage', {
    channel: field.str(),
    content: field.str({ transform: (s: string) => s.trim() }),
    priority: field.int({ default: 1 }),
    replyTo: field.str({ nullable: true }),
  });

  it('checks and transforms declared arguments, fills defaults and nulls, passes the rest through', () => {
    assert.deepEqual(checkArgs(spec, { channel: 'Public', content: '  hi  ', extra: [1] }), { channel: 'Public', content: 'hi', priority: 1, replyTo: null, extra: [1] });
    assert.equal(checkArgs(undefined, { any: 1 }).any, 1);
    assert.equal(compileArgs('Nothing', undefined), undefined);
  });

  it('names the argument and the problem in a BAD_ARGUMENTS error', () => {
    assert.throws(
      () => checkArgs(spec, { content: 'x' }),
      (err: unknown) => isLexiconsError(err, ErrorCode.BAD_ARGUMENTS) && err.message === '[CreateChatMessage] argument channel: is required',
    );
    assert.throws(
      () => checkArgs(spec, { channel: 5, content: 'x' }),
      (err: unknown) => isLexiconsError(err, ErrorCode.BAD_ARGUMENTS) && /^\[CreateChatMessage\] argument channel: /.test(err.message),
    );
  });

  it('refuses an args declaration that is not made of fields', () => {
    assert.throws(() => compileArgs('Bad', { x: 5 as never }), (err: unknown) => isLexiconsError(err, ErrorCode.SCHEMA));
  });
});
