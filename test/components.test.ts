/**
 * Managers built from a record keyed by name (`new SignalManager({ A, B })`, the form that keeps
 * names for typed clients) and from a list: same classes, same order; a key that is not the
 * component's name is refused with an exact message.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Header, HeaderManager, Server, Signal, SignalManager, field, type HeaderContext, type SignalContext } from '../src/index.js';
import { isLexiconsError } from '../src/errors.js';

class Ping extends Signal {
  static override args = { n: field.int() };
  execute({ n }: SignalContext<typeof Ping>) {
    return this.response({ n });
  }
}
class Renamed extends Signal {
  static override signalName = 'Pong';
  execute() {}
}
class Login extends Header {
  static override args = { password: field.str() };
  execute({ password }: HeaderContext<typeof Login>): boolean {
    return password === 'pw';
  }
}

describe('SignalManager / HeaderManager', () => {
  it('takes a record keyed by name, in key order, like the list form', () => {
    assert.deepEqual([...new SignalManager({ Ping, Pong: Renamed })], [Ping, Renamed]);
    assert.deepEqual([...new SignalManager(Ping, Renamed)], [Ping, Renamed]);
    assert.deepEqual([...new HeaderManager({ Login })], [Login]);
    const server = new Server({ signals: new SignalManager({ Ping, Pong: Renamed }), headers: new HeaderManager({ Login }) });
    assert.deepEqual([...server.components.signals.keys()], ['Ping', 'Pong']);
    assert.deepEqual([...server.components.headers.keys()], ['Login']);
  });

  it('refuses a key that is not the component name', () => {
    assert.throws(
      () => new SignalManager({ Pang: Ping } as never),
      (err: unknown) => isLexiconsError(err, 'OPTION') && err.message === "SignalManager: key Pang holds Ping; a key must be the component's name",
    );
    assert.throws(
      () => new SignalManager({ Renamed } as never),
      (err: unknown) => isLexiconsError(err, 'OPTION') && err.message === "SignalManager: key Renamed holds Pong; a key must be the component's name",
    );
    assert.throws(
      () => new HeaderManager({ Logon: Login } as never),
      (err: unknown) => isLexiconsError(err, 'OPTION') && err.message === "HeaderManager: key Logon holds Login; a key must be the component's name",
    );
  });
});
