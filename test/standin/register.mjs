// `node --import ./test/standin/register.mjs …` (tests put it in NODE_OPTIONS): installs the stand-in's resolution
// hook (hooks.mjs) in this process, and so in every process it starts with that NODE_OPTIONS.
import { register } from 'node:module';

register('./hooks.mjs', import.meta.url);
