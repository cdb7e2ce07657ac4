/**
 * The operations options checked at the edge with exact messages (src/ops-options.ts): Server
 * options at construction, environment variables at resolution, CLI flags at parsing, and the
 * run-time checks (protocol 'wss' without tls, adminPort equal to port); plus how they resolve
 * (flags over options over environment over defaults).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseCommand, type StartCommand } from '../../src/main/cli.js';
import { Server, type ServerOptions } from '../../src/server.js';
import { loadApp } from '../../src/workers/app-loader.js';
import { fixture, runCli } from '../helpers/server.js';
import { tempDir } from '../helpers/temp-dir.js';

const NOT_AN_ADDRESS = 'is not an IP address or CIDR range (e.g. 10.0.0.1, 10.0.0.0/8, fd00::/8, localhost)';

describe('operations options: exact messages', () => {
  const bad: Array<[ServerOptions, string]> = [
    [{ trustProxy: '10.0.0.1' as never }, 'trustProxy must be a list of IP addresses or CIDR ranges, got "10.0.0.1"'],
    [{ trustProxy: ['10.0.0.1', 7 as never] }, 'trustProxy must be a list of IP addresses or CIDR ranges, got ["10.0.0.1",7]'],
    [{ trustProxy: ['proxy.internal'] }, `trustProxy: "proxy.internal" ${NOT_AN_ADDRESS}`],
    [{ trustProxy: ['10.0.0.0/33'] }, `trustProxy: "10.0.0.0/33" ${NOT_AN_ADDRESS}`],
    [{ trustProxy: ['fd00::/129'] }, `trustProxy: "fd00::/129" ${NOT_AN_ADDRESS}`],
    [{ trustProxy: ['*'] }, `trustProxy: "*" would let any client choose its address with X-Forwarded-For; list the proxies' addresses`],
    [{ adminTrust: ['10.0.0.1/x'] }, `adminTrust: "10.0.0.1/x" ${NOT_AN_ADDRESS}`],
    [{ adminToken: 'short' }, 'adminToken must be a string of at least 16 characters without spaces, got a string of 5 characters'],
    [{ adminToken: 'sixteen chars ok?' }, 'adminToken must be a string of at least 16 characters without spaces, got a string of 17 characters'],
    [{ adminToken: 42 as never }, 'adminToken must be a string of at least 16 characters without spaces, got 42'],
    [{ adminPort: 70000 }, 'adminPort must be an integer from 0 to 65535, got 70000'],
    [{ adminHost: ' ' }, 'adminHost must be a non-empty string, got " "'],
    [{ tls: 'cert.pem' as never }, 'tls must be an object { cert, key, passphrase? } of PEM file paths, got "cert.pem"'],
    [{ tls: { cert: 'c.pem' } as never }, 'tls.key must be the path of a PEM private key file, got undefined'],
    [{ tls: { cert: '', key: 'k.pem' } }, 'tls.cert must be the path of a PEM certificate file, got ""'],
    [{ tls: { cert: 'c.pem', key: 'k.pem', passphrase: 5 as never } }, 'tls.passphrase must be a string, got 5'],
    [{ tls: { cert: 'c.pem', key: 'k.pem', ca: 'x' } as never }, 'tls.ca is not a known TLS option (known: cert, key, passphrase)'],
    [{ protocol: 'https' as never }, `protocol must be 'ws' or 'wss', got "https"`],
  ];
  for (const [options, message] of bad) {
    it(`new Server(${JSON.stringify(options)})`, () => {
      assert.throws(() => new Server(options), { code: 'OPTION', message });
    });
  }

  const badEnv: Array<[NodeJS.ProcessEnv, string]> = [
    [{ LEXICONS_TRUST_PROXY: '10.0.0.1,bad' }, `LEXICONS_TRUST_PROXY: "bad" ${NOT_AN_ADDRESS}`],
    [{ LEXICONS_TRUST_PROXY: ' , ' }, 'LEXICONS_TRUST_PROXY must list at least one IP address or CIDR range, got " , "'],
    [{ LEXICONS_ADMIN_TRUST: 'everyone' }, `LEXICONS_ADMIN_TRUST: "everyone" ${NOT_AN_ADDRESS}`],
    [{ LEXICONS_ADMIN_TOKEN: 'abc' }, 'LEXICONS_ADMIN_TOKEN must be a string of at least 16 characters without spaces, got a string of 3 characters'],
    [{ LEXICONS_TLS_CERT: 'c.pem' }, 'LEXICONS_TLS_CERT and LEXICONS_TLS_KEY go together (only one is set)'],
  ];
  for (const [env, message] of badEnv) {
    it(`env ${JSON.stringify(env)}`, () => {
      assert.throws(() => new Server().resolve({}, env), { code: 'OPTION', message });
    });
  }

  it('adminPort equal to port, and protocol wss without tls, are refused at run', async () => {
    assert.throws(() => new Server({ port: 5000, adminPort: 5000 }).resolve({}, {}), { code: 'OPTION', message: 'adminPort must differ from port (both 5000)' });
    const { server } = await loadApp(fixture('ops-app'));
    const wss = new Server({ ...server.options, protocol: 'wss' });
    await using data = await tempDir();
    await assert.rejects(wss.run({ appPath: fixture('ops-app'), port: 0, data: data.path, handleSignals: false }), {
      code: 'OPTION',
      message: "protocol 'wss' needs tls: { cert, key } (or lexicons start --cert/--key)",
    });
  });
});

describe('operations options: resolution', () => {
  it('defaults: no proxies, admin from loopback, no token, no admin port, no TLS', () => {
    const r = new Server({ host: '0.0.0.0' }).resolve({}, {});
    assert.deepEqual([r.trustProxy, r.adminTrust, r.adminToken, r.adminPort, r.adminHost, r.tls], [[], ['localhost'], null, null, '0.0.0.0', null]);
  });

  it('run overrides (flags) over Server options over the environment', () => {
    const env = { LEXICONS_TRUST_PROXY: '10.0.0.0/8, ::1', LEXICONS_ADMIN_TRUST: '*', LEXICONS_ADMIN_TOKEN: 'x'.repeat(16), LEXICONS_TLS_CERT: 'e.crt', LEXICONS_TLS_KEY: 'e.key', LEXICONS_TLS_PASSPHRASE: 'pw' };
    const fromEnv = new Server().resolve({}, env);
    assert.deepEqual([fromEnv.trustProxy, fromEnv.adminTrust, fromEnv.adminToken, fromEnv.tls], [['10.0.0.0/8', '::1'], ['*'], 'x'.repeat(16), { cert: 'e.crt', key: 'e.key', passphrase: 'pw' }]);
    const server = new Server({ trustProxy: ['192.168.0.1'], adminTrust: [], adminToken: 'o'.repeat(20), adminPort: 9100, tls: { cert: 'o.crt', key: 'o.key' } });
    const fromOptions = server.resolve({}, env);
    assert.deepEqual([fromOptions.trustProxy, fromOptions.adminTrust, fromOptions.adminToken, fromOptions.adminPort, fromOptions.tls], [['192.168.0.1'], [], 'o'.repeat(20), 9100, { cert: 'o.crt', key: 'o.key' }]);
    const fromFlags = server.resolve({ trustProxy: ['172.16.0.0/12'], adminPort: 9200, adminHost: '127.0.0.1', tls: { cert: 'f.crt', key: 'f.key' } }, env);
    assert.deepEqual([fromFlags.trustProxy, fromFlags.adminPort, fromFlags.adminHost, fromFlags.tls], [['172.16.0.0/12'], 9200, '127.0.0.1', { cert: 'f.crt', key: 'f.key' }]);
  });
});

describe('operations flags of lexicons start', () => {
  const usage = (argv: string[]) => {
    try {
      parseCommand(argv);
    } catch (err) {
      return (err as Error).message;
    }
    return 'no error';
  };

  it('parses --trust-proxy, --admin-trust, --admin-port, --admin-host, --cert/--key', () => {
    const parsed = parseCommand(['start', 'app', '--trust-proxy', '10.0.0.0/8,::1', '--admin-trust', '*', '--admin-port', '9100', '--admin-host', '127.0.0.1', '--cert', 'c.pem', '--key', 'k.pem']) as StartCommand;
    const { trustProxy, adminTrust, adminPort, adminHost, tls } = parsed.overrides;
    assert.deepEqual({ trustProxy, adminTrust, adminPort, adminHost, tls }, { trustProxy: ['10.0.0.0/8', '::1'], adminTrust: ['*'], adminPort: 9100, adminHost: '127.0.0.1', tls: { cert: 'c.pem', key: 'k.pem' } });
  });

  const bad: Array<[string[], string]> = [
    [['--trust-proxy', 'nginx'], `--trust-proxy: "nginx" ${NOT_AN_ADDRESS}`],
    [['--trust-proxy', ''], '--trust-proxy must list at least one IP address or CIDR range, got ""'],
    [['--trust-proxy', '*'], `--trust-proxy: "*" would let any client choose its address with X-Forwarded-For; list the proxies' addresses`],
    [['--admin-trust', '10.0.0.256'], `--admin-trust: "10.0.0.256" ${NOT_AN_ADDRESS}`],
    [['--admin-port', '99999'], '--admin-port must be an integer from 0 to 65535, got "99999"'],
    [['--admin-host', ''], '--admin-host must not be empty'],
    [['--cert', 'c.pem'], '--cert and --key go together (got only --cert)'],
    [['--key', 'k.pem'], '--cert and --key go together (got only --key)'],
    [['--cert', ' ', '--key', 'k.pem'], '--cert must not be empty'],
  ];
  for (const [flags, message] of bad) {
    it(`refuses ${flags.join(' ')}`, () => {
      assert.equal(usage(['start', 'app', ...flags]), message);
    });
  }

  it('refuses them for check and compact, and prints the message as a usage error', async () => {
    assert.equal(usage(['check', 'app', '--admin-port', '9100']), '--admin-port does not apply to check');
    assert.equal(usage(['compact', 'app', '--cert', 'c', '--key', 'k']), '--cert does not apply to compact');
    const r = await runCli(['start', 'x', '--trust-proxy', 'nginx']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, new RegExp(`^lexicons: --trust-proxy: "nginx" is not an IP address or CIDR range`, 'm'));
  });
});
