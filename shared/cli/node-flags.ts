// Flags for the Node processes that train (coordinator, workers, one-process runs), given on their command line
// (package.json scripts, and wherever a script spawns one): V8 reads them only at start-up.
//
// A training process holds a ~50 MB JavaScript heap (tfjs, and the source maps tsx enables) and, each step, makes
// and drops tens of MB of ArrayBuffers (socket reads, message fragments, host copies of tensors). Sized for that
// small heap, V8 runs a full mark-compact about once a step per process (5–30 ms each, plus marking on helper
// threads that take the cores the workers compute on). Starting the old generation at 512 MB lets those buffers
// die in the young generation's scavenges: measured on the 2-core VM (`npm run bench -- scaling`, cpu preset),
// 237 → 10 mark-compacts in the coordinator over 200 steps, and 2-worker synced steps from ~235 to ~200 ms.
// Peak RSS rose by 25–120 MB per process (446 → 500 MB coordinator, 473 → 590 MB worker).
export const NODE_HEAP_FLAGS: readonly string[] = ['--initial-old-space-size=512'];
