/**
 * The durability options: `durability: { fsync, snapshotSeconds }` of the Server, the CLI's
 * `--fsync` / `--snapshot-seconds`, env LEXICONS_FSYNC / LEXICONS_SNAPSHOT_SECONDS as defaults.
 * Every refusal has an exact message.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isLexiconsError } from '../../src/errors.js';
import { parseCommand } from '../../src/main/cli.js';
import { durabilitySettings, Server, type ServerOptions } from '../../src/server.js';
import { TestClient } from '../helpers/client.js';
import { fixture, runCli, spawnCli } from '../helpers/server.js';
import { tempDir } from '../helpers/temp-dir.js';

function refusal(fn: () => unknown, message: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(isLexiconsError(err, 'OPTION'), String(err));
    assert.equal(err.message, message);
    return true;
  });
}

describe('durability options', () => {
  const bad: Array<[unknown, string]> = [
    ['always', 'durability must be an object { fsync?, snapshotSeconds? }, got "always"'],
    [null, 'durability must be an object { fsync?, snapshotSeconds? }, got null'],
    [{ fsync: 'sometimes' }, 'durability.fsync must be one of always, everysec, no, got "sometimes"'],
    [{ fsync: true }, 'durability.fsync must be one of always, everysec, no, got true'],
    [{ snapshotSeconds: 0 }, 'durability.snapshotSeconds must be a number of seconds from 0.001 to 2147483, got 0'],
    [{ snapshotSeconds: -5 }, 'durability.snapshotSeconds must be a number of seconds from 0.001 to 2147483, got -5'],
    [{ snapshotSeconds: Number.NaN }, 'durability.snapshotSeconds must be a number of seconds from 0.001 to 2147483, got null'],
    [{ snapshotSeconds: '60' }, 'durability.snapshotSeconds must be a number of seconds from 0.001 to 2147483, got "60"'],
    // Node timers cannot hold more than 2^31 - 1 ms: a longer interval would fire at once, every ms.
    [{ snapshotSeconds: 3_000_000 }, 'durability.snapshotSeconds must be a number of seconds from 0.001 to 2147483, got 3000000'],
    [{ fsynk: 'always' }, 'durability.fsynk is not a known durability option (known: fsync, snapshotSeconds)'],
  ];
  for (const [durability, message] of bad) {
    it(`new Server refuses durability ${JSON.stringify(durability)}`, () => {
      refusal(() => new Server({ durability } as ServerOptions), message);
    });
  }

  it('accepts every policy and fractional intervals', () => {
    for (const fsync of ['always', 'everysec', 'no'] as const) new Server({ durability: { fsync, snapshotSeconds: 0.25 } });
    new Server({ durability: {} });
  });

  it('resolves overrides, then the Server option, then the environment, then everysec / 300 s', () => {
    assert.deepEqual(durabilitySettings(undefined, undefined, {}), { fsync: 'everysec', snapshotSeconds: 300 });
    const env = { LEXICONS_FSYNC: 'no', LEXICONS_SNAPSHOT_SECONDS: '12.5' };
    assert.deepEqual(durabilitySettings(undefined, undefined, env), { fsync: 'no', snapshotSeconds: 12.5 });
    assert.deepEqual(durabilitySettings({ fsync: 'always' }, undefined, env), { fsync: 'always', snapshotSeconds: 12.5 });
    assert.deepEqual(durabilitySettings({ fsync: 'always', snapshotSeconds: 60 }, { snapshotSeconds: 0.5 }, env), { fsync: 'always', snapshotSeconds: 0.5 });
    assert.deepEqual(durabilitySettings({ fsync: 'always' }, { fsync: 'everysec' }, env), { fsync: 'everysec', snapshotSeconds: 12.5 });
  });

  it('refuses bad environment values with their names', () => {
    refusal(() => durabilitySettings(undefined, undefined, { LEXICONS_FSYNC: 'ALWAYS' }), 'LEXICONS_FSYNC must be one of always, everysec, no, got "ALWAYS"');
    refusal(
      () => durabilitySettings(undefined, undefined, { LEXICONS_SNAPSHOT_SECONDS: '5m' }),
      'LEXICONS_SNAPSHOT_SECONDS must be a number of seconds from 0.001 to 2147483, got "5m"',
    );
    // An option set in code wins: a bad environment value it overrides is not read.
    assert.equal(durabilitySettings({ fsync: 'no' }, undefined, { LEXICONS_FSYNC: 'bogus' }).fsync, 'no');
  });

  it('parses --fsync and --snapshot-seconds for start', () => {
    const cmd = parseCommand(['start', 'app', '--fsync', 'always', '--snapshot-seconds', '0.25']);
    assert.notEqual(cmd, 'help');
    assert.deepEqual((cmd as Extract<typeof cmd, { overrides: unknown }>).overrides, { durability: { fsync: 'always', snapshotSeconds: 0.25 } });
  });

  const cliBad: Array<[string[], RegExp]> = [
    [['start', 'x', '--fsync', 'sometimes'], /^lexicons: --fsync must be one of always, everysec, no, got "sometimes"$/m],
    [['start', 'x', '--snapshot-seconds', '0'], /^lexicons: --snapshot-seconds must be a number of seconds from 0\.001 to 2147483, got "0"$/m],
    [['start', 'x', '--snapshot-seconds', '1e3'], /^lexicons: --snapshot-seconds must be a number of seconds from 0\.001 to 2147483, got "1e3"$/m],
    [['start', 'x', '--snapshot-seconds=-1'], /^lexicons: --snapshot-seconds must be a number of seconds from 0\.001 to 2147483, got "-1"$/m],
    [['check', 'x', '--fsync', 'always'], /^lexicons: --fsync does not apply to check$/m],
    [['compact', 'x', '--snapshot-seconds', '5'], /^lexicons: --snapshot-seconds does not apply to compact$/m],
  ];
  for (const [args, pattern] of cliBad) {
    it(`the CLI refuses: lexicons ${args.join(' ')}`, async () => {
      const r = await runCli(args);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, pattern);
    });
  }

  it('--help documents both flags', async () => {
    const r = await runCli(['--help']);
    assert.match(r.stdout, /--fsync <policy>/);
    assert.match(r.stdout, /--snapshot-seconds <s>/);
  });

  it('the server runs with the flags (START line) and snapshots at the interval (SNAPSHOT line)', async () => {
    await using folder = await tempDir();
    const data = folder.path;
    await using srv = await spawnCli([fixture('cli-app'), '--port', '0', '--host', '127.0.0.1', '--data', data, '--fsync', 'always', '--snapshot-seconds', '0.05'], {
      env: { LEXICONS_FSYNC: 'no' },
    });
    assert.match(srv.output(), /"status":"START".*"fsync":"always","snapshotSeconds":0\.05/);
    await using c = await TestClient.connect(srv.url);
    await c.call({ AddNote: { text: 'snap' } });
    await srv.waitForOutput(/"status":"SNAPSHOT".*"tables":\{"Note":1\}/);
    assert.equal((await srv.stop()).code, 0);
  });
});
