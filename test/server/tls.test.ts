/**
 * TLS (uWS SSLApp): a self-signed certificate made here with the openssl CLI, a real wss://
 * client verifying it against its CA, https /health, the CLI's --cert/--key with an encrypted key
 * (LEXICONS_TLS_PASSPHRASE), and the exact start-up errors for unreadable files, a wrong
 * passphrase and a key that does not match the certificate.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { get as httpsGet } from 'node:https';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadApp } from '../../src/workers/app-loader.js';
import { TestClient } from '../helpers/client.js';
import { fixture, forSuite, spawnCli, startApp } from '../helpers/server.js';
import { tempDir } from '../helpers/temp-dir.js';

const APP = fixture('ops-app');

function opensslMissing(): string | false {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return false;
  } catch {
    return 'the openssl CLI is not installed (.ci/run installs it): no certificate to test with';
  }
}
const skip = opensslMissing();
if (skip) console.log(`# tls tests skipped: ${skip}`);

/** The certificate files, in a temp folder that disposing removes. */
interface Pems extends AsyncDisposable {
  dir: string;
  cert: string;
  key: string;
  encryptedKey: string;
  otherKey: string;
  ca: Buffer;
}

/** A self-signed P-256 certificate for 127.0.0.1/localhost, its key (plain and encrypted) and an unrelated key. */
async function makeCertificate(): Promise<Pems> {
  const folder = await tempDir('lexicons-tls-');
  const dir = folder.path;
  const p = (name: string) => join(dir, name);
  const openssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });
  try {
    openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', p('key.pem'), '-out', p('cert.pem'), '-days', '2', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost');
    openssl('pkey', '-in', p('key.pem'), '-out', p('encrypted-key.pem'), '-aes256', '-passout', 'pass:open sesame 42');
    openssl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-out', p('other-key.pem'));
  } catch (err) {
    await folder[Symbol.asyncDispose]();
    throw err;
  }
  return {
    dir,
    cert: p('cert.pem'),
    key: p('key.pem'),
    encryptedKey: p('encrypted-key.pem'),
    otherKey: p('other-key.pem'),
    ca: readFileSync(p('cert.pem')),
    [Symbol.asyncDispose]: () => folder[Symbol.asyncDispose](),
  };
}

describe('TLS', { timeout: 30_000, skip }, () => {
  const pems = forSuite('the certificate', makeCertificate);

  it('serves wss:// and https:// with tls: { cert, key }; a verifying client connects and calls', async () => {
    await using srv = await startApp(APP, { overrides: { tls: { cert: pems.cert, key: pems.key } } });
    const listen = await srv.waitForLog((r) => r.status === 'LISTEN');
    assert.equal(listen.data.url, `wss://127.0.0.1:${srv.port}`);
    {
      await using c = await TestClient.connect(`wss://127.0.0.1:${srv.port}`, { ws: { ca: pems.ca } });
      assert.deepEqual(await c.call({ AddNote: { text: 'over TLS' } }), [{ AddNote: { text: 'over TLS' } }]);
    }
    const health = await new Promise<number>((resolve, reject) => {
      httpsGet({ host: '127.0.0.1', port: srv.port, path: '/health', ca: pems.ca }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      }).on('error', reject);
    });
    assert.equal(health, 200);
    await assert.rejects(TestClient.connect(`ws://127.0.0.1:${srv.port}`, { timeoutMs: 3000 }), 'plain ws:// to the TLS port fails');
  });

  it('lexicons start --cert --key with an encrypted key and LEXICONS_TLS_PASSPHRASE', async () => {
    await using data = await tempDir();
    await using srv = await spawnCli([APP, '--port', '0', '--host', '127.0.0.1', '--data', data.path, '--cert', pems.cert, '--key', pems.encryptedKey], {
      env: { LEXICONS_TLS_PASSPHRASE: 'open sesame 42' },
    });
    assert.match(srv.output(), new RegExp(`"url":"wss://127\\.0\\.0\\.1:${srv.port}"`));
    {
      await using c = await TestClient.connect(`wss://127.0.0.1:${srv.port}`, { ws: { rejectUnauthorized: false } });
      assert.deepEqual(await c.call({ AddNote: { text: 'cli' } }), [{ AddNote: { text: 'cli' } }]);
    }
    assert.equal((await srv.stop()).code, 0);
  });

  it('refuses to start with an exact message: unreadable file, wrong passphrase, key of another certificate', async () => {
    const { server } = await loadApp(APP);
    const run = (tls: { cert: string; key: string; passphrase?: string }) => server.run({ appPath: APP, port: 0, data: pems.dir, handleSignals: false, tls });
    const missing = join(pems.dir, 'missing.pem');
    await assert.rejects(run({ cert: missing, key: pems.key }), { code: 'OPTION', message: new RegExp(`^tls\\.cert: cannot read ${missing}: ENOENT`) });
    await assert.rejects(run({ cert: pems.cert, key: missing }), { code: 'OPTION', message: new RegExp(`^tls\\.key: cannot read ${missing}: ENOENT`) });
    const doNotLoad = (key: string) => new RegExp(`^tls: ${pems.cert} and ${key} do not load as a certificate and its private key: `);
    await assert.rejects(run({ cert: pems.cert, key: pems.encryptedKey, passphrase: 'wrong' }), { code: 'OPTION', message: doNotLoad(pems.encryptedKey) });
    await assert.rejects(run({ cert: pems.cert, key: pems.otherKey }), { code: 'OPTION', message: doNotLoad(pems.otherKey) });
  });
});
