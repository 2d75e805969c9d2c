// A Megatron-style MLP block over two devices with the library, as a user would write it:
// Y = gelu(X A) B, A split by columns (no communication), B split by rows, one all-reduce at the end.
// Run it after `npm ci` (which builds dist/): node examples/megatron-mlp.mjs [--backend gpujs]
import {
  CollectiveContext,
  ColumnParallelLinear,
  DeviceGroup,
  gatherToHost,
  Replicate,
  RowParallelLinear,
  reference,
  shardFromHost,
} from 'webgpu-parallel';

const backend = process.argv.includes('--backend')
  ? process.argv[process.argv.indexOf('--backend') + 1]
  : 'auto';
const [tokens, hidden, ffn] = [64, 256, 1024];
let seed = 1;
const random = (n) =>
  Float32Array.from({ length: n }, () => {
    seed = (seed * 16807) % 2147483647;
    return (seed / 2147483647 - 0.5) * 0.2;
  });
const [x, a, b, bias] = [random(tokens * hidden), random(hidden * ffn), random(ffn * hidden), random(hidden)];

const group = await DeviceGroup.open({ count: 2, backend });
const ctx = new CollectiveContext();
try {
  // The column split leaves each device its own slice of the hidden activations; the row split reads exactly
  // that slice (inputIsParallel), so the only transfer is the sum of the partial outputs.
  const up = new ColumnParallelLinear(ctx, {
    group,
    weight: a,
    inFeatures: hidden,
    outFeatures: ffn,
    activation: 'gelu',
  });
  const down = new RowParallelLinear(ctx, {
    group,
    weight: b,
    bias,
    inFeatures: ffn,
    outFeatures: hidden,
    inputIsParallel: true,
  });
  const input = shardFromHost(group, x, [tokens, hidden], Replicate(), 'x');
  const h = await up.forward(input);
  const y = await down.forward(h.output);
  const got = await gatherToHost(y.output);

  const want = reference.matmulRef(
    reference.matmulRef(x, a, tokens, ffn, hidden, undefined, 'gelu'),
    b,
    tokens,
    hidden,
    ffn,
    bias,
  );
  const maxError = got.reduce((m, v, i) => Math.max(m, Math.abs(v - want[i])), 0);
  console.log(`backend ${group.backend}, devices ${group.devices.map((d) => d.name).join(', ')}`);
  console.log(`output ${y.output.describe()}`);
  console.log(`host bytes moved: ${y.traffic.bytesToHost} to the host, ${y.traffic.bytesFromHost} back`);
  console.log(`max |error| against the CPU reference: ${maxError.toExponential(2)}`);
  for (const t of [input, h.output, y.output]) t.free();
  for (const layer of [up, down]) layer.free();
  if (!(maxError <= 1e-4)) process.exitCode = 1;
} finally {
  ctx.destroy();
  group.destroy();
}
