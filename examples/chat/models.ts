/** The chat example's Models: the seed's User (hashed password property) and ChatMessage. */
import { Model, field, utils } from '../../src/index.js';

export class User extends Model {
  static email = field.str({ unique: true });
  /**
   * The seed's password property setter: raw passwords are hashed on write (scrypt). Secret: the
   * admin page and the logs show it masked.
   */
  static password = field.str({ transform: utils.encryptIfPlain, secret: true });
}

export class ChatMessage extends Model {
  static author = field.ref(() => User);
  static channel = field.str({ index: true });
  static content = field.str();
  static timestamp = field.float();
}
