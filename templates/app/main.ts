// The app: its Models (tables), Headers (who may connect), Channels (who receives what) and
// Signals (what clients call). `npm start` runs it (lexicons start main.ts); `npm test` tests it.
import {
  Channel,
  ChannelManager,
  Header,
  HeaderManager,
  Model,
  ModelManager,
  Server,
  Signal,
  SignalManager,
  field,
  type HeaderContext,
  type SignalContext,
} from 'lexicons';

/** A table: one row per note (every row also gets a `pk`). */
export class Note extends Model {
  static author = field.str({ index: true });
  static text = field.str();
}

/** Everyone connected receives the new notes. */
export class Notes extends Channel {}

/** `{ Guest: { name } }` on connect: admits anyone with a name, and joins them to Notes. */
export class Guest extends Header {
  static override args = { name: field.str() };

  execute({ name, ws }: HeaderContext<typeof Guest>): boolean {
    if (name.trim() === '') return false;
    ws.auth = name;
    ws.subscribe('Notes');
    return true;
  }
}

/** Stores a note and sends it to the Notes channel (the caller gets it as the call's reply). */
export class AddNote extends Signal {
  static override args = { text: field.str() };

  execute({ text, db, ws }: SignalContext<typeof AddNote>) {
    if (text.trim() === '') throw new Error('text must not be empty');
    const note = db.create(Note, { author: String(ws.auth), text });
    return this.response(note.toDict(), ['Notes']);
  }
}

export const server = new Server({
  host: 'localhost',
  port: 5000,
  data: 'data/',
  models: new ModelManager(Note),
  headers: new HeaderManager({ Guest }),
  channels: new ChannelManager(Notes),
  signals: new SignalManager({ AddNote }),
});

server.runIfMain(import.meta.url); // runs it when this is the entry script (npx tsx main.ts); the tests find the module by it
