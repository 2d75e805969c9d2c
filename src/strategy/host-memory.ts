import { formatBytes } from '../format.js';
import { hostMemoryLimits } from '../runtime/host-info.js';
import type { Finding } from './findings.js';
import type { StagePlan } from './model-plan.js';
import type { ModelStrategy, Strategy } from './schema.js';
import { chainKind } from './stages/registry.js';

/**
 * Copies of the final output a run keeps on the host: each measured run's (3 pipelined, 3 one after
 * another), the reference's, and one being compared.
 */
const OUTPUT_COPIES = 8;
/** Host bytes per element of the schedule and its measurement, per microbatch (plain objects, spans). */
const BYTES_PER_ELEMENT_MICROBATCH = 4096;

export interface HostMemoryEstimate {
  /** Typed arrays: token ids, outputs, the reference's activations. */
  readonly buffersBytes: number;
  /** Plain objects that grow with the microbatch count: the schedule, its actions, the measured spans. */
  readonly heapBytes: number;
}

/** What a chain strategy's run holds on the host beside the devices. */
export function estimateChainHostMemory(strategy: Strategy, plans: readonly StagePlan[]): HostMemoryEstimate {
  const { batch_size: sequences, microbatches } = strategy.batch;
  const tokens = sequences * strategy.model.seq_len;
  const last = plans[plans.length - 1];
  const widths = last ? chainKind(last.kind).activationWidths(last, 0) : null;
  const outputElements = widths
    ? (widths.outputRows === 'sequences' ? sequences : tokens) * widths.output
    : 0;
  const widest = Math.max(strategy.model.hidden_size, strategy.model.ffn_size, strategy.model.vocab_size);
  return {
    // Ids (u32, and a copy per microbatch), the outputs, and the float64 reference's widest activation.
    buffersBytes: tokens * 8 + outputElements * 4 * OUTPUT_COPIES + (tokens / microbatches) * widest * 8 * 2,
    heapBytes: microbatches * (plans.length * 2) * BYTES_PER_ELEMENT_MICROBATCH,
  };
}

/** What a model strategy's run holds on the host: the ids, every run's logits, the float64 reference's. */
export function estimateModelHostMemory(
  strategy: ModelStrategy,
  vocab: number,
  stages: number,
): HostMemoryEstimate {
  const { batch_size: sequences, seq_len: seqLen, microbatches } = strategy.batch;
  const tokens = sequences * seqLen;
  return {
    buffersBytes: tokens * 8 + tokens * vocab * 4 * OUTPUT_COPIES + seqLen * vocab * 8,
    heapBytes: microbatches * (stages * 2) * BYTES_PER_ELEMENT_MICROBATCH,
  };
}

/**
 * A strategy whose run would not fit in this process: its host buffers past half the machine's memory, or
 * its schedule's objects past a quarter of the JS heap. Refused before the run, where it would otherwise
 * die of the heap after minutes, naming the field that makes it so.
 */
export function hostMemoryFindings(estimate: HostMemoryEstimate, limits = hostMemoryLimits()): Finding[] {
  const findings: Finding[] = [];
  if (estimate.buffersBytes > limits.buffersBytes / 2) {
    findings.push({
      code: 'HOST_MEMORY',
      severity: 'error',
      path: '$.batch.batch_size',
      message:
        `the run would hold about ${formatBytes(estimate.buffersBytes)} on the host (token ids, every run's outputs, ` +
        `the reference's), more than half of this machine's ${formatBytes(limits.buffersBytes)}`,
      fix: 'run fewer sequences (batch.batch_size) or shorter ones; the measurement needs only a few steps',
    });
  }
  if (estimate.heapBytes > limits.heapBytes / 4) {
    findings.push({
      code: 'HOST_SCHEDULE',
      severity: 'error',
      path: '$.batch.microbatches',
      message:
        `the schedule and its measurements would take about ${formatBytes(estimate.heapBytes)} of the JS heap, ` +
        `more than a quarter of its ${formatBytes(limits.heapBytes)} limit`,
      fix: 'use fewer microbatches: a pipeline gains nothing past a few times its stage count',
    });
  }
  return findings;
}
