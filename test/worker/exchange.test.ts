// worker/exchange.ts and owners-step.ts over real WebSockets: a link is authenticated by its first message, shares and values reach the other side, bad values never reach the replica.
import t from 'tap';
import WebSocket from 'ws';
import { initBackend } from '../../shared/backend/backend.ts';
import { resolveConfig } from '../../shared/config.ts';
import { ERROR_CODES, ProtocolError } from '../../shared/errors.ts';
import { Peer, clientOptions } from '../../shared/net/peer.ts';
import { PROTOCOL_VERSION, type Message } from '../../shared/net/protocol.ts';
import { disposeFft } from '../../shared/smi/fft.ts';
import { WorkerCompute } from '../../worker/compute.ts';
import { Exchange } from '../../worker/exchange.ts';
import { OwnersStep } from '../../worker/owners-step.ts';

t.teardown(() => disposeFft());

/** Opens a raw link to `url`, sends `first`, resolves with the close code. */
function closeCodeFor(url: string, first: Message): Promise<number> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, clientOptions());
    const peer = new Peer(ws);
    peer.onClose((code) => resolve(code));
    ws.once('open', () => void peer.send(first).catch(() => {}));
  });
}

t.test('exchange: a link with a wrong token, protocol or first message is closed with its code; a good one carries shares and values', async (t) => {
  const got: [Message, string, boolean][] = [];
  const a = new Exchange({ token: 'tok', log: () => {}, onMessage: (m, from, inbound) => void got.push([m, from, inbound]) });
  const url = await a.listen('127.0.0.1', 0);
  a.setSelf('A');
  t.match(url, /^ws:\/\/127\.0\.0\.1:\d+$/, 'the URL the others are told');
  t.equal(await closeCodeFor(url, { type: 'link', protocol: PROTOCOL_VERSION, token: 'nope', workerId: 'x' }), ERROR_CODES.E_TOKEN.close, 'wrong token: E_TOKEN');
  t.equal(await closeCodeFor(url, { type: 'link', protocol: PROTOCOL_VERSION, token: null, workerId: 'x' }), ERROR_CODES.E_TOKEN.close, 'no token: E_TOKEN');
  t.equal(await closeCodeFor(url, { type: 'link', protocol: PROTOCOL_VERSION - 1, token: 'tok', workerId: 'x' }), ERROR_CODES.E_VERSION.close, 'another protocol: E_VERSION');
  t.equal(await closeCodeFor(url, { type: 'share', step: 1, round: 0, chunk: 0, tensors: [] }), ERROR_CODES.E_UNEXPECTED.close, 'a share before the link: E_UNEXPECTED');

  const bGot: [Message, string, boolean][] = [];
  const b = new Exchange({ token: 'tok', log: () => {}, onMessage: (m, from, inbound) => void bGot.push([m, from, inbound]) });
  b.setSelf('B');
  await b.connect([{ workerId: 'A', url, tensors: [0] }, { workerId: 'B', url: 'ws://127.0.0.1:1', tensors: [1] }]);
  t.ok(b.to('A') && !b.to('B'), 'a link to the other owner, none to itself');
  await b.to('A')!.send({ type: 'share', step: 1, round: 0, chunk: 0, tensors: [Float32Array.of(1, 2)] });
  const link = await a.inboundFrom('B');
  await link.send({ type: 'values', step: 1, round: 0, tensors: [Float32Array.of(3)] });
  while (got.length === 0 || bGot.length === 0) await new Promise((r) => setTimeout(r, 10));
  t.same([got[0]![0].type, got[0]![1], got[0]![2]], ['share', 'B', true], 'the owner got the share, from B, inbound');
  t.same([bGot[0]![0].type, bGot[0]![1], bGot[0]![2]], ['values', 'A', false], 'B got the values, from A, on its own link');
  await b.close();
  await a.close();
});

t.test('owners step: values (each part) are checked whole (count, lengths, finiteness, parts in order) before any reaches the replica', async (t) => {
  const info = await initBackend('wasm');
  const cfg = resolveConfig({ preset: 'test', smi: 'cosine', spectral: 'global' });
  const compute = new WorkerCompute(cfg, info);
  const other = new Exchange({ token: null, log: () => {}, onMessage: () => {} });
  const otherUrl = await other.listen('127.0.0.1', 0);
  other.setSelf('O');
  const sent: Message[] = [];
  const ex = new Exchange({ token: null, log: () => {}, onMessage: () => {} });
  ex.setSelf('me');
  const step = new OwnersStep(() => compute, ex, info, async (m) => void sent.push(m), () => ({ sent: 0, received: 0 }), () => {});
  step.selfId = 'me';
  const n = compute.model.params.length;
  const weights = compute.model.params.map((p) => new Float32Array(p.variable.size).fill(0.5));
  await step.load({ type: 'load', planVersion: 1, step: 0, members: ['me', 'O'], owners: [{ workerId: 'me', url: 'ws://127.0.0.1:1', tensors: [...Array(n - 1).keys()] }, { workerId: 'O', url: otherUrl, tensors: [n - 1] }], weights });
  t.same(sent.map((m) => m.type), ['loaded'], 'loaded once the link to the other owner is open');
  await step.runTask({ type: 'task', step: 1, round: 0, planVersion: 1, sequences: [1], holders: ['O'], mine: [] });
  const last = compute.model.params[n - 1]!;
  const before = (last.variable.dataSync() as Float32Array).slice();
  const bad = (tensors: Float32Array[]) => () => step.data({ type: 'values', step: 1, round: 0, tensors }, 'O');
  const throwsCode = (fn: () => void, code: string, what: string) => {
    try {
      fn();
      t.fail(`${what}: did not throw`);
    } catch (e) {
      t.ok(e instanceof ProtocolError && e.code === code, `${what}: ${code}`);
    }
  };
  throwsCode(bad([]), 'E_SHAPE', 'no tensor for the one O owns');
  throwsCode(bad([new Float32Array(last.variable.size + 1)]), 'E_SHAPE', 'a tensor of the wrong length');
  const nan = new Float32Array(last.variable.size);
  nan[3] = Infinity;
  throwsCode(bad([nan]), 'E_NONFINITE', 'a tensor holding Inf');
  const good = () => [new Float32Array(last.variable.size).fill(0.25)];
  throwsCode(() => step.data({ type: 'values', step: 1, round: 0, first: 1, tensors: good() }, 'O'), 'E_UNEXPECTED', 'a part from tensor 1 on before tensor 0 came in');
  throwsCode(bad([...good(), ...good()]), 'E_SHAPE', 'two tensors from an owner of one');
  throwsCode(() => step.data({ type: 'values', step: 1, round: 0, first: 0, more: true, tensors: good() }, 'O'), 'E_SHAPE', 'a part that announces more after the owner\'s last tensor');
  throwsCode(() => step.data({ type: 'values', step: 1, round: 0, tensors: [] }, 'stranger'), 'E_UNEXPECTED', 'values from a worker that owns nothing');
  throwsCode(() => step.data({ type: 'share', step: 1, round: 0, chunk: 0, tensors: [] }, 'stranger'), 'E_UNEXPECTED', "a share of a chunk from a worker that is not its holder");
  t.same([...(last.variable.dataSync() as Float32Array)], [...before], 'the replica is as it was');
  step.data({ type: 'values', step: 1, round: 0, tensors: good() }, 'O');
  t.ok((last.variable.dataSync() as Float32Array).every((x) => x === 0.25), 'good values are assigned');
  throwsCode(bad(good()), 'E_UNEXPECTED', 'values once all of that owner\'s came in');
  step.dispose();
  await ex.close();
  await other.close();
  compute.dispose();
});

t.test('exchange: two owners send to each other over the link the other opened (server to client: unmasked); a worker that cannot listen, over its own', async (t) => {
  const got = new Map<string, [Message, string, boolean][]>();
  const make = (id: string) => {
    got.set(id, []);
    const x = new Exchange({ token: 'tok', log: () => {}, onMessage: (m, from, inbound) => void got.get(id)!.push([m, from, inbound]) });
    x.setSelf(id);
    return x;
  };
  const a = make('A');
  const b = make('B');
  const c = make('C'); // compute-only: it never listens
  const owners = [{ workerId: 'A', url: await a.listen('127.0.0.1', 0), tensors: [0] }, { workerId: 'B', url: await b.listen('127.0.0.1', 0), tensors: [1] }];
  t.same(await Promise.all([a.connect(owners), b.connect(owners), c.connect(owners)]), [[], [], []], 'every link open');
  const fromB = await a.inboundFrom('B');
  await b.inboundFrom('A');
  await a.inboundFrom('C');
  t.equal(a.linkTo('B'), fromB, "A sends to B over the link B opened");
  t.not(a.linkTo('B'), a.to('B'), 'not over its own link to B');
  t.equal(c.linkTo('A'), c.to('A'), 'C, which has no server, sends over the link it opened');
  const share = (chunk: number): Message => ({ type: 'share', step: 1, round: 0, chunk, tensors: [new Float32Array(1000).fill(chunk + 0.5)] });
  const sentAB = await a.send(a.linkTo('B')!, share(0));
  await b.send(b.linkTo('A')!, share(1));
  await c.send(c.linkTo('A')!, share(2));
  await a.send(fromB, { type: 'values', step: 1, round: 0, tensors: [Float32Array.of(3)] });
  while (got.get('A')!.length < 2 || got.get('B')!.length < 2) await new Promise((r) => setTimeout(r, 10));
  // a ws client refuses a masked frame (WS_ERR_UNEXPECTED_MASK): what arrives on a link this side opened came unmasked
  t.same(got.get('B')!.map(([m, from, inbound]) => [m.type, from, inbound]), [['share', 'A', false], ['values', 'A', false]], "B gets A's share and values on the link it opened to A, as its client: unmasked");
  t.same(got.get('A')!.map(([m, from, inbound]) => [m.type, from, inbound]).sort(), [['share', 'B', false], ['share', 'C', true]], "A gets B's share on its own link, C's on C's");
  const [ba, bb, bc] = [a.bytes(), b.bytes(), c.bytes()];
  t.equal(ba.sharesSent, sentAB.bytes, "A's shares sent: the share's frame bytes");
  t.equal(bb.sharesReceived, ba.sharesSent, "B received as many bytes of shares as A sent, on whichever link");
  t.equal(ba.sharesReceived, bb.sharesSent + bc.sharesSent, "A received B's and C's");
  t.equal(bb.valuesReceived, ba.valuesSent, 'values counted apart from shares');
  t.ok(ba.valuesSent > 0 && ba.sharesSent + ba.valuesSent <= ba.sent, "the data's bytes are part of A's total");
  await Promise.all([a.close(), b.close(), c.close()]);
});
