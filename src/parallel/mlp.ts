import type { CollectiveContext } from '../collectives/context.js';
import { DistributedTensor, Shard } from '../collectives/layout.js';
import type { DeviceGroup } from '../runtime/device-group.js';
import { TensorScope } from '../runtime/scope.js';
import { ColumnParallelLinear } from './column-parallel-linear.js';
import { balancedSizes } from './head-split.js';
import { expectShape, loadColumnParallel, loadRowParallel, spansOf } from './load-shards.js';
import type { Module, Parameter } from './module.js';
import { RowParallelLinear } from './row-parallel-linear.js';
import { allOrFree } from './shards.js';
import type { WeightReader } from './weight-reader.js';

/**
 * Llama's MLP, split as Megatron splits it: down(silu(gate(x)) · up(x)) with gate and up column-parallel
 * over the intermediate dim and down row-parallel, so the only communication is down's all-reduce. x and the
 * output are [tokens, hidden], replicated on the group.
 */
export class ParallelGatedMlp implements Module {
  readonly sizes: readonly number[];
  private readonly names: { gate: string; up: string; down: string };
  private readonly gate: ColumnParallelLinear;
  private readonly up: ColumnParallelLinear;
  private readonly down: RowParallelLinear;

  constructor(
    ctx: CollectiveContext,
    readonly group: DeviceGroup,
    reader: WeightReader,
    private readonly prefix: string,
    hidden: number,
    intermediate: number,
    /** Intermediate columns per device; absent: as even as they divide. */
    sizes?: readonly number[],
    names: { gate: string; up: string; down: string } = {
      gate: 'gate_proj',
      up: 'up_proj',
      down: 'down_proj',
    },
  ) {
    this.sizes = sizes ?? balancedSizes(intermediate, group.size);
    const name = (n: string) => `${prefix}.${n}.weight`;
    expectShape(reader, name(names.gate), [intermediate, hidden]);
    expectShape(reader, name(names.up), [intermediate, hidden]);
    expectShape(reader, name(names.down), [hidden, intermediate]);
    using scope = new TensorScope();
    const column = (n: string) =>
      scope.track(loadColumnParallel(reader, name(n), group, spansOf(this.sizes)));
    const shape = { group, inFeatures: hidden, outFeatures: intermediate, sizes: this.sizes };
    this.gate = new ColumnParallelLinear(ctx, {
      ...shape,
      weight: column(names.gate),
      label: name(names.gate),
    });
    this.up = new ColumnParallelLinear(ctx, { ...shape, weight: column(names.up), label: name(names.up) });
    this.down = new RowParallelLinear(ctx, {
      group,
      weight: scope.track(loadRowParallel(reader, name(names.down), group, this.sizes)),
      inFeatures: intermediate,
      outFeatures: hidden,
      sizes: this.sizes,
      inputIsParallel: true,
      label: name(names.down),
    });
    for (const l of [this.gate, this.up, this.down]) scope.keep(l.weight);
    this.names = names;
  }

  parameters(): Parameter[] {
    return [
      { name: `${this.prefix}.${this.names.gate}.weight`, value: this.gate.weight },
      { name: `${this.prefix}.${this.names.up}.weight`, value: this.up.weight },
      { name: `${this.prefix}.${this.names.down}.weight`, value: this.down.weight },
    ];
  }

  /** Whether `forwardResidual` adds the residual inside down's matmul (see RowParallelLinear). */
  get fusesResidual(): boolean {
    return this.down.fusesResidual;
  }

  forward(x: DistributedTensor): Promise<DistributedTensor> {
    return this.run(x);
  }

  /** residual + mlp(x), the residual replicated like x. */
  forwardResidual(x: DistributedTensor, residual: DistributedTensor): Promise<DistributedTensor> {
    return this.run(x, residual);
  }

  private async run(x: DistributedTensor, residual?: DistributedTensor): Promise<DistributedTensor> {
    using scope = new TensorScope();
    const act = scope.track(await this.activation(x));
    const out = residual ? this.down.forwardResidual(act, residual) : this.down.forward(act);
    return (await out).output;
  }

  /**
   * silu(gate(x)) · up(x), sharded like the intermediate dim: each device's `swigluMatmul` on its own
   * columns (one kernel for a decode step's rows). Layouts the layers must check or move go through them.
   */
  private async activation(x: DistributedTensor): Promise<DistributedTensor> {
    const shape = [x.globalShape[0]!, this.gate.outFeatures];
    if (x.placement.kind === 'replicate' && x.globalShape.length === 2 && x.group === this.group) {
      const shards = await allOrFree(
        this.group.devices.map((d, r) =>
          d.kernels.swigluMatmul(
            x.shards[r]!,
            this.gate.weight.shards[r]!,
            this.up.weight.shards[r]!,
            `${this.prefix}.act`,
          ),
        ),
        (t) => t.free(),
      );
      return new DistributedTensor(this.group, Shard(1, this.sizes), shape, shards);
    }
    using scope = new TensorScope();
    const gate = scope.track((await this.gate.forward(x)).output);
    const up = scope.track((await this.up.forward(x)).output);
    const shards = await allOrFree(
      this.group.devices.map((d, r) =>
        d.kernels.swiglu(gate.shards[r]!, up.shards[r]!, `${this.prefix}.act`),
      ),
      (t) => t.free(),
    );
    return new DistributedTensor(this.group, Shard(1, this.sizes), gate.globalShape, shards);
  }

  free(): void {
    this.gate.free();
    this.up.free();
    this.down.free();
  }
}
