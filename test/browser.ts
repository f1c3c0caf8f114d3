// The browser lookup of the tests: scripts/browser/find.ts (the benchmark and the screenshot script use it too).
export * from '../scripts/browser/find.ts';
