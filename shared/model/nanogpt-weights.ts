// Which tensors of a nanoGPT state_dict this project's GPT (bias=False, lm_head tied to wte) takes, and why it refuses the rest.
//
// A nanoGPT file the project cannot represent must not load as a different model: biases (bias=True), an
// untied lm_head, layers beyond n_layer and unknown names are refused, naming the tensors (dropped on purpose
// with `dropExtra`, and then listed); missing tensors and wrong shapes are always refused. What nanoGPT itself
// accepts is accepted: the `_orig_mod.` prefix of a torch.compile'd model (train.py strips it), the causal-mask
// buffers `attn.bias` of PyTorch < 2 (from_pretrained discards them), and a file holding only `lm_head.weight`
// of the tied pair (safetensors' save_model keeps one name of tensors that share memory).
/** A tensor as a safetensors file holds it (the same shape as shared/train/safetensors.ts's NamedTensor; model/ does not import train/). */
type NamedTensor = { shape: number[]; data: Float32Array };

/** A tensor the model expects, under nanoGPT's name and in PyTorch's layout. */
export interface ExpectedTensor {
  name: string;
  shape: number[];
}

export interface ModelShape {
  vocab_size: number;
  block_size: number;
  n_layer: number;
  n_head: number;
  n_embd: number;
}

export interface WeightMatch {
  /** the tensors to load, by the model's names */
  tensors: Map<string, NamedTensor>;
  /** names in the file that were dropped on purpose (dropExtra) */
  dropped: string[];
  /** what was accepted as nanoGPT accepts it (prefix stripped, mask buffers ignored, head taken as wte) */
  notes: string[];
}

const WTE = 'transformer.wte.weight';
const HEAD = 'lm_head.weight';
const COMPILED_PREFIX = '_orig_mod.';
/** Every bias a nanoGPT GPT(bias=True) has: LayerNorms and Linears (nanoGPT model.py). */
const BIAS = /^transformer\.(h\.\d+\.(ln_1|ln_2|attn\.c_attn|attn\.c_proj|mlp\.c_fc|mlp\.c_proj)|ln_f)\.bias$/;
const MASK_BUFFER = /^transformer\.h\.\d+\.attn\.bias$/;
const LAYER = /^transformer\.h\.(\d+)\./;

const sameShape = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((x, i) => x === b[i]);

function equalData(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i] && !(Number.isNaN(a[i]) && Number.isNaN(b[i]))) return false;
  return true;
}

/** Whether t is nanoGPT's causal-mask buffer: [1, 1, T, T] ones on and below the diagonal, zeros above. */
function isCausalMask(t: NamedTensor): boolean {
  const [one, two, T, T2] = t.shape;
  if (t.shape.length !== 4 || one !== 1 || two !== 1 || T !== T2) return false;
  for (let i = 0; i < T!; i++) for (let j = 0; j < T!; j++) if (t.data[i * T! + j] !== (j <= i ? 1 : 0)) return false;
  return true;
}

/** "a, b, c and 4 more" */
function names(list: readonly string[], max = 16): string {
  return list.length <= max ? list.join(', ') : `${list.slice(0, max).join(', ')} and ${list.length - max} more`;
}

/**
 * Matches the file's tensors to the model's. Throws an Error naming every tensor it cannot load and what the
 * project expects; with `dropExtra`, tensors the model has no place for are dropped and listed instead.
 */
export function matchNanoGptWeights(expected: readonly ExpectedTensor[], file: ReadonlyMap<string, NamedTensor>, model: ModelShape, opts: { dropExtra?: boolean } = {}): WeightMatch {
  const notes: string[] = [];
  let weights = new Map(file);
  const keys = [...weights.keys()];
  if (keys.length > 0 && keys.every((k) => k.startsWith(COMPILED_PREFIX))) {
    weights = new Map(keys.map((k) => [k.slice(COMPILED_PREFIX.length), weights.get(k)!]));
    notes.push(`the ${COMPILED_PREFIX} prefix of a torch.compile'd model stripped from every name`);
  }
  const want = new Map(expected.map((e) => [e.name, e.shape]));

  const head = weights.get(HEAD);
  let untied = false;
  if (head) {
    const wte = weights.get(WTE);
    if (!wte) {
      weights.set(WTE, head);
      notes.push(`${HEAD} taken as ${WTE} (the file holds one name of the tied pair)`);
    } else if (!(sameShape(head.shape, wte.shape) && equalData(head.data, wte.data))) {
      untied = true;
    }
    weights.delete(HEAD);
  }

  const bias: string[] = [];
  const extraLayers = new Map<number, string[]>();
  const unknown: string[] = [];
  const masks: string[] = [];
  for (const [name, t] of weights) {
    if (want.has(name)) continue;
    const layer = LAYER.exec(name);
    if (MASK_BUFFER.test(name) && isCausalMask(t)) masks.push(name);
    else if (BIAS.test(name)) bias.push(name);
    else if (layer && Number(layer[1]) >= model.n_layer) extraLayers.set(Number(layer[1]), [...(extraLayers.get(Number(layer[1])) ?? []), name]);
    else unknown.push(name);
  }
  if (masks.length > 0) notes.push(`${masks.length} causal-mask buffer(s) (attn.bias of PyTorch < 2, not parameters) ignored`);

  const missing = expected.filter((e) => !weights.has(e.name)).map((e) => e.name);
  const shapes = expected.filter((e) => weights.has(e.name) && !sameShape(weights.get(e.name)!.shape, e.shape))
    .map((e) => `${e.name} is [${weights.get(e.name)!.shape}], expected [${e.shape}]`);

  const cfg = `n_layer=${model.n_layer}, n_head=${model.n_head}, n_embd=${model.n_embd}, block_size=${model.block_size}, vocab_size=${model.vocab_size}`;
  const droppable: string[] = [];
  if (bias.length > 0) {
    droppable.push(`${bias.length} bias tensor(s) (${names(bias)}): this project's GPT has no biases, as nanoGPT's GPT(bias=False); a bias=True model cannot be loaded as it was trained`);
  }
  if (untied) {
    droppable.push(`${HEAD} differs from ${WTE}: this project ties the output head to the token embedding (nanoGPT's weight tying, its default); an untied head has no place here`);
  }
  if (extraLayers.size > 0) {
    const layers = [...extraLayers.keys()].sort((a, b) => a - b);
    const count = [...extraLayers.values()].reduce((a, l) => a + l.length, 0);
    const contiguous = layers.every((l, i) => l === model.n_layer + i);
    const hint = contiguous ? `: the file has ${layers.at(-1)! + 1} layers; pass --n-layer ${layers.at(-1)! + 1}` : '';
    droppable.push(`${count} tensor(s) of layers this configuration lacks (${layers.map((l) => `transformer.h.${l}.*`).join(', ')}; n_layer=${model.n_layer})${hint}`);
  }
  if (unknown.length > 0) droppable.push(`${unknown.length} tensor(s) nanoGPT's GPT does not have (${names(unknown)})`);

  const fatal: string[] = [];
  if (missing.length > 0) fatal.push(`missing ${missing.length} tensor(s) the model needs: ${names(missing)}`);
  if (shapes.length > 0) fatal.push(`wrong shape: ${names(shapes, 8)}${shapeHint(weights, model)}`);

  if (fatal.length === 0 && (droppable.length === 0 || opts.dropExtra)) {
    const dropped = opts.dropExtra ? [...bias, ...(untied ? [HEAD] : []), ...[...extraLayers.values()].flat(), ...unknown] : [];
    const tensors = new Map(expected.map((e) => [e.name, weights.get(e.name)!]));
    return { tensors, dropped, notes };
  }
  const problems = [...fatal, ...(opts.dropExtra ? [] : droppable)];
  const drop = droppable.length > 0 && !opts.dropExtra && fatal.length === 0
    ? ' To load the rest anyway, dropping these on purpose, add --init-from-drop-extra (the run log lists what was dropped).'
    : '';
  throw new Error(`not a nanoGPT GPT(bias=False) with a tied head of this configuration (${cfg}): ${problems.join('; ')}.${drop}`);
}

/** What a wrong shape says about the file's own configuration, with the flags that match it. */
function shapeHint(weights: ReadonlyMap<string, NamedTensor>, model: ModelShape): string {
  const hints: string[] = [];
  const wte = weights.get(WTE)?.shape;
  const wpe = weights.get('transformer.wpe.weight')?.shape;
  if (wte?.length === 2 && wte[1] !== model.n_embd) hints.push(`n_embd ${wte[1]} (--n-embd ${wte[1]})`);
  if (wpe?.length === 2 && wpe[0] !== model.block_size) hints.push(`block_size ${wpe[0]} (--block-size ${wpe[0]})`);
  if (wte?.length === 2 && wte[0] !== model.vocab_size) hints.push(`a vocabulary of ${wte[0]} tokens (this corpus has ${model.vocab_size})`);
  return hints.length > 0 ? ` (the file's model has ${hints.join(', ')})` : '';
}
