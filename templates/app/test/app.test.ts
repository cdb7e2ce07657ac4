// The app's tests: node:test through tsx (`npm test`), with lexicons/testing: a real server on a
// free port with a temp data folder, typed clients, direct access to its database.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startTestServer } from 'lexicons/testing';
import { Note, server } from '../main.js';

test('AddNote stores the note and sends it to everyone in Notes', async () => {
  await using app = await startTestServer(server);
  const ann = await app.client({ headers: { Guest: { name: 'ann' } } });
  const bob = await app.client({ headers: { Guest: { name: 'bob' } } });
  const received = new Promise((resolve) => bob.on('AddNote', resolve));

  const note = await ann.call('AddNote', { text: 'hello' });

  assert.equal(note?.text, 'hello');
  assert.equal(note?.author, 'ann');
  assert.deepEqual(await received, note);
  assert.equal(app.db.count(Note), 1);
});
