import { Command } from 'commander';
import { DeviceGroup } from '../src/runtime/device-group.js';
import type { GpuDevice } from '../src/runtime/webgpu/gpu-device.js';
import { runBrowserBench } from './browser.js';
import { runCollectiveBench } from './collectives.js';
import { runDistributedBench } from './distributed.js';
import { benchDispatch, benchMatmulVariants, gflops, matmulShapes } from './matmul.js';
import { runModelBench } from './model.js';
import { runMoeBench } from './moe.js';
import { benchOurGpuJsMatmul, gpujsPeerMatmul } from './peers/gpujs-matmul.js';
import { runPipelineBench } from './pipeline.js';
import type { BenchRecord } from './record.js';
import { runSoakBench } from './soak.js';
import { runVariantsBench } from './strategy-variants.js';
import { formatTable } from './table.js';

interface Options {
  json?: boolean;
  quick?: boolean;
  suites: string;
  runs: number;
  peers: boolean;
}

const program = new Command('bench')
  .description('Measure matmul, dispatch, collective and pipeline throughput on this machine')
  .option('--json', 'one JSON object a line instead of tables')
  .option('--quick', 'fewer and smaller sizes')
  .option(
    '--suites <list>',
    'comma-separated: matmul,collective,pipeline,model,moe,distributed,variants,soak,browser (needs chromium)',
    'matmul,collective,pipeline,model,moe,variants,soak',
  )
  .option('--runs <n>', 'timed runs per figure (median reported)', (v) => Math.max(5, Number(v)), 5)
  .option('--no-peers', 'skip the gpu.js peers')
  .parse();
const options = program.opts<Options>();
const suites = new Set(options.suites.split(','));
const records: BenchRecord[] = [];
const sink = (record: BenchRecord) => {
  records.push(record);
  if (options.json) process.stdout.write(`${JSON.stringify(record)}\n`);
  else
    process.stderr.write(
      `  ${record.suite} ${record.name}${record.median_ms === undefined ? '' : ` ${Number(record.median_ms).toFixed(3)} ms`}\n`,
    );
};

if (suites.has('matmul')) {
  const group = await DeviceGroup.open({ count: 1, backend: 'webgpu' });
  const device = group.devices[0] as GpuDevice;
  const shapes = matmulShapes(options.quick ?? false);
  try {
    await benchDispatch(device, sink);
    const tuned = await benchMatmulVariants(device, shapes, sink, options.runs);
    if (options.peers) {
      for (const shape of shapes) {
        const ours = tuned.get(shape.label)!;
        for (const mode of ['webasm', 'webgpu'] as const) {
          const peer = await gpujsPeerMatmul(mode, shape.m, shape.n, shape.k, options.runs);
          sink({
            suite: 'matmul',
            name: `${shape.label}/gpu.js-${mode}`,
            backend: `gpujs-${mode}`,
            adapter: mode === 'webgpu' ? device.adapter.name : 'host',
            m: shape.m,
            n: shape.n,
            k: shape.k,
            median_ms: peer.median_ms,
            gflops: peer.gflops,
            checked: peer.checked,
            peer: `gpu.js ${mode} (its own matmul kernel)`,
            ours_vs_peer: peer.median_ms / ours,
          });
        }
        const fallback = await benchOurGpuJsMatmul(shape.m, shape.n, shape.k, options.runs);
        sink({
          suite: 'matmul',
          name: `${shape.label}/fallback-gpujs`,
          backend: 'gpujs',
          adapter: fallback.mode,
          m: shape.m,
          n: shape.n,
          k: shape.k,
          median_ms: fallback.median_ms,
          gflops: gflops(shape.m, shape.n, shape.k, fallback.median_ms),
          checked: fallback.checked,
          peer: null,
        });
      }
    }
  } finally {
    group.destroy();
  }
}
if (suites.has('collective')) {
  await runCollectiveBench(sink, {
    quick: options.quick,
    onPass: (pass, passes) => process.stderr.write(`  collective pass ${pass}/${passes}\n`),
  });
}
if (suites.has('pipeline')) await runPipelineBench(sink, { quick: options.quick });
if (suites.has('model')) await runModelBench(sink, { quick: options.quick });
if (suites.has('moe')) await runMoeBench(sink, { quick: options.quick });
if (suites.has('distributed')) await runDistributedBench(sink, { quick: options.quick });
if (suites.has('variants')) await runVariantsBench(sink, { quick: options.quick });
if (suites.has('soak')) await runSoakBench(sink, { quick: options.quick });
if (suites.has('browser')) await runBrowserBench(sink, { quick: options.quick });
if (!options.json) process.stdout.write(formatTable(records));
