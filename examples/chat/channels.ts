/** The chat example's channel: every logged-in client may subscribe to Public. */
import { Channel } from '../../src/index.js';

export class Public extends Channel {}
