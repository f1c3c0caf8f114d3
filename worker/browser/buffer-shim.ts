// Injected into the browser bundle (coordinator/browser-bundle.ts): every free `Buffer` (shared/net/frames.ts, msgpackr) is the `buffer` package's.
export { Buffer } from 'buffer';
