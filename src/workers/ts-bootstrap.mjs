// Piscina entry used only when lexicons itself runs from its TypeScript sources (an app that
// imports lexicons' src through tsx). Worker threads ignore `--import tsx` in execArgv, and a
// .ts entry cannot load before tsx is registered in the thread: register, then load the entry.
import { register } from 'tsx/esm/api';

register();
const entry = await import('./worker.ts');
export default entry.default;
