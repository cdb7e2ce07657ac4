// Entry of the snapshot thread used only when lexicons itself runs from its TypeScript sources (an
// app that imports lexicons' src through tsx), as workers/ts-bootstrap.mjs for the worker pool: a
// worker thread ignores `--import tsx`, so register tsx first, then load the entry.
import { register } from 'tsx/esm/api';

register();
await import('./snapshot-thread.ts');
