/**
 * The chat example's Headers: `Login: {"email": ..., "password": ...}` and
 * `Register: {"email": ..., "password": ...}` sent on connect (in the v1 `$connect` frame, an HTTP
 * header or a query parameter). Both set `ws.meta` to the user's email, the public value presence
 * shows (never a secret: `ws.auth` is the private one).
 */
import { Header, field, utils, type HeaderContext } from '../../src/index.js';
import { User } from './models.js';

/** Verified against when the email is unknown, so both failures take the same time. */
let dummyHash: string | undefined;

export class Login extends Header {
  static override args = { email: field.str(), password: field.str() };

  execute({ email, password, db, ws }: HeaderContext<typeof Login>): boolean {
    const user = db.get(User, { email });
    if (!user) {
      utils.verify(password, (dummyHash ??= utils.encrypt('not a password')));
      return false;
    }
    if (!utils.verify(password, user.password)) return false;
    // Users imported from the original lexicons carry PBKDF2 hashes: upgrade them on login.
    if (utils.needsRehash(user.password)) db.update(User, user, { password: utils.encrypt(password) });
    ws.auth = user.pk;
    ws.meta = { email: user.email }; // public: Public's presence shows it to the other members
    ws.send([{ Login: { pk: user.pk, email: user.email } }]);
    return true;
  }
}

export class Register extends Header {
  static override args = { email: field.str(), password: field.str() };

  execute({ email, password, db, ws }: HeaderContext<typeof Register>): boolean {
    if (!email.includes('@')) throw new Error('email must be an address');
    if (password.length < 8) throw new Error('password must have at least 8 characters');
    if (db.get(User, { email })) throw new Error(`${email} is already registered`);
    const user = db.create(User, { email, password });
    ws.auth = user.pk;
    ws.meta = { email };
    ws.send([{ Register: { success: true, pk: user.pk, email } }]);
    return true;
  }
}
