// Stand-in for @tensorflow/tfjs-node(-gpu) in tests (no GPU, no libtensorflow here): tfjs's cpu kernels under
// the backend name 'tensorflow', registered as tfjs-node 4.22.0 registers its backend (src/index.ts: registerBackend
// ('tensorflow', …, 3), then setBackend) with the backend fields it has (nodejs_kernel_backend.ts: isGPUPackage,
// isUsingGpuDevice). Only the kernels tfjs-node 4.22.0 registers (src/register_all_kernels.ts) are registered, so an
// op that real tfjs-node lacks fails here too.
//
// Environment (read when the package loads, as libtensorflow reads its own at load):
//   SMI_STANDIN_PACKAGES   comma list of the packages "installed": gpu (tfjs-node-gpu), cpu (tfjs-node) [gpu]
//   SMI_STANDIN_GPU_DEVICE 0: tfjs-node-gpu reports no GPU device (libtensorflow fell back to the CPU) [1]
//   SMI_STANDIN_JIT_MS     the first call of each kernel with given input shapes blocks this long, as CUDA's
//                          compile of PTX on a kernel's first use does on a GPU without matching binaries [0]
// It records the CUDA/TensorFlow environment it loaded with and every kernel call on the backend (`standIn`), and
// says so on stderr; without a GPU device it also prints libtensorflow's warnings of a CUDA-12-only host.
import * as tf from '@tensorflow/tfjs';
import { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';

const pkg = new URL(import.meta.url).searchParams.get('package') ?? '@tensorflow/tfjs-node';
const kind = pkg === '@tensorflow/tfjs-node-gpu' ? 'gpu' : 'cpu';
if (!(process.env.SMI_STANDIN_PACKAGES ?? 'gpu').split(',').map((s) => s.trim()).includes(kind)) {
  throw Object.assign(new Error(`Cannot find package '${pkg}' (stand-in: not in SMI_STANDIN_PACKAGES)`), { code: 'ERR_MODULE_NOT_FOUND' });
}

/** The kernels tfjs-node 4.22.0 registers for 'tensorflow' (src/register_all_kernels.ts, in its order). */
export const TFJS_NODE_KERNELS = [
  '_FusedMatMul', 'Abs', 'Acos', 'Acosh', 'Add', 'AddN', 'All', 'Any', 'ArgMax', 'ArgMin', 'Asin', 'Asinh', 'Atan', 'Atan2',
  'Atanh', 'AvgPool', 'AvgPool3D', 'AvgPool3DGrad', 'AvgPoolGrad', 'BatchMatMul', 'BatchToSpaceND', 'Bincount',
  'BroadcastArgs', 'Cast', 'Ceil', 'ClipByValue', 'Complex', 'ComplexAbs', 'Concat', 'Conv2D', 'Conv2DBackpropFilter',
  'Conv2DBackpropInput', 'Conv3D', 'Conv3DBackpropFilterV2', 'Conv3DBackpropInputV2', 'Cos', 'Cosh', 'CropAndResize',
  'Cumprod', 'Cumsum', 'DepthToSpace', 'DepthwiseConv2dNative', 'DepthwiseConv2dNativeBackpropFilter',
  'DepthwiseConv2dNativeBackpropInput', 'Diag', 'Dilation2D', 'Dilation2DBackpropFilter', 'Dilation2DBackpropInput',
  'Einsum', 'Elu', 'EluGrad', 'Equal', 'Erf', 'Exp', 'ExpandDims', 'Expm1', 'FFT', 'Fill', 'FlipLeftRight', 'Floor',
  'FloorDiv', 'FusedBatchNorm', 'FusedConv2D', 'FusedDepthwiseConv2D', 'GatherNd', 'GatherV2', 'Greater', 'GreaterEqual',
  'Identity', 'IFFT', 'Imag', 'IsFinite', 'IsInf', 'IsNan', 'LeakyRelu', 'Less', 'LessEqual', 'LinSpace', 'Log', 'Log1p',
  'LogicalAnd', 'LogicalNot', 'LogicalOr', 'LRN', 'LRNGrad', 'Max', 'Maximum', 'MaxPool', 'MaxPool3D', 'MaxPool3DGrad',
  'MaxPoolGrad', 'Mean', 'Min', 'Minimum', 'MirrorPad', 'Mod', 'Multinomial', 'Multiply', 'Neg', 'NonMaxSuppressionV3',
  'NonMaxSuppressionV4', 'NonMaxSuppressionV5', 'NotEqual', 'OneHot', 'OnesLike', 'Pack', 'PadV2', 'Pow', 'Prelu', 'Prod',
  'Range', 'Real', 'RealDiv', 'Reciprocal', 'Relu', 'Relu6', 'Reshape', 'ResizeBilinear', 'ResizeBilinearGrad',
  'ResizeNearestNeighbor', 'ResizeNearestNeighborGrad', 'Reverse', 'Round', 'Rsqrt', 'ScatterNd', 'Select', 'Selu',
  'Sigmoid', 'Sign', 'Sin', 'Sinh', 'Slice', 'Softmax', 'Softplus', 'SpaceToBatchND', 'SparseToDense', 'SplitV', 'Sqrt',
  'Square', 'SquaredDifference', 'StaticRegexReplace', 'Step', 'StridedSlice', 'Sub', 'Sum', 'Tan', 'Tanh',
  'TensorScatterUpdate', 'Tile', 'TopK', 'Transpose', 'Unique', 'Unpack', 'UnsortedSegmentSum', 'ZerosLike',
];

/** What a test can read back from the backend (tf.backend() as StandInBackend). */
export interface StandInRecord {
  package: string;
  /** the variables CUDA and TensorFlow read when libtensorflow loads, as they were then (null: unset) */
  envAtLoad: Record<'CUDA_VISIBLE_DEVICES' | 'CUDA_DEVICE_ORDER' | 'TF_FORCE_GPU_ALLOW_GROWTH', string | null>;
  /** kernel name → calls on this backend */
  kernelCalls: Map<string, number>;
}

export class StandInBackend extends MathBackendCPU {
  readonly isGPUPackage: boolean;
  readonly isUsingGpuDevice: boolean;
  readonly standIn: StandInRecord;

  constructor(record: StandInRecord) {
    super();
    (this as unknown as { firstUse: boolean }).firstUse = false; // no "install tfjs-node" banner: this is tfjs-node
    this.isGPUPackage = record.package === '@tensorflow/tfjs-node-gpu';
    this.isUsingGpuDevice = usingGpuDevice;
    this.standIn = record;
  }
}

const usingGpuDevice = kind === 'gpu' && process.env.SMI_STANDIN_GPU_DEVICE !== '0';
const jitMs = Number(process.env.SMI_STANDIN_JIT_MS ?? 0);
const compiled = new Set<string>();
const sleep = new Int32Array(new SharedArrayBuffer(4));

/** The simulated compile of a kernel's first use for these input shapes. */
function jit(name: string, inputs: object): void {
  if (!(jitMs > 0)) return;
  const key = `${name} ${Object.values(inputs).map((x) => (x as tf.TensorInfo).shape.join('x')).join(' ')}`;
  if (compiled.has(key)) return;
  compiled.add(key);
  Atomics.wait(sleep, 0, 0, jitMs);
}
const env = (k: keyof StandInRecord['envAtLoad']) => process.env[k] ?? null;
const record: StandInRecord = {
  package: pkg,
  envAtLoad: { CUDA_VISIBLE_DEVICES: env('CUDA_VISIBLE_DEVICES'), CUDA_DEVICE_ORDER: env('CUDA_DEVICE_ORDER'), TF_FORCE_GPU_ALLOW_GROWTH: env('TF_FORCE_GPU_ALLOW_GROWTH') },
  kernelCalls: new Map(),
};

// Both packages register the one name 'tensorflow' (as the real ones do): the first loaded wins.
if (tf.findBackendFactory('tensorflow') === null) {
  for (const name of TFJS_NODE_KERNELS) {
    const cpu = tf.getKernel(name, 'cpu');
    if (!cpu) continue; // a TensorFlow op tfjs's cpu backend lacks (e.g. StaticRegexReplace): not used here
    tf.registerKernel({
      ...cpu,
      backendName: 'tensorflow',
      kernelFunc: (args) => {
        record.kernelCalls.set(name, (record.kernelCalls.get(name) ?? 0) + 1);
        jit(name, args.inputs);
        return cpu.kernelFunc(args);
      },
    });
  }
  tf.registerBackend('tensorflow', () => new StandInBackend(record), 3);
  if (kind === 'gpu' && !usingGpuDevice) {
    // what libtensorflow 2.9.1 prints on a CUDA-12-only host (as quoted in tensorflow/tfjs#8362 and #8269), then runs on the CPU
    const ld = process.env.LD_LIBRARY_PATH ?? '';
    for (const lib of ['libcudart.so.11.0', 'libcudnn.so.8']) {
      process.stderr.write(`W tensorflow/stream_executor/platform/default/dso_loader.cc:64] Could not load dynamic library '${lib}'; dlerror: ${lib}: cannot open shared object file: No such file or directory; LD_LIBRARY_PATH: ${ld}\n`);
    }
    process.stderr.write('W tensorflow/core/common_runtime/gpu/gpu_device.cc:1850] Cannot dlopen some GPU libraries. Please make sure the missing libraries mentioned above are installed properly if you would like to use GPU.\n');
  }
  process.stderr.write(
    `[stand-in libtensorflow: tfjs cpu kernels, no real GPU] ${pkg} loaded: isUsingGpuDevice=${usingGpuDevice} ` +
      Object.entries(record.envAtLoad).map(([k, v]) => `${k}=${v ?? '<unset>'}`).join(' ') + '\n',
  );
}
if (!(await tf.setBackend('tensorflow'))) throw new Error('Could not initialize TensorFlow backend.');
