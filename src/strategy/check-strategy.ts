import type { Finding } from './findings.js';
import { estimateChainHostMemory, estimateModelHostMemory, hostMemoryFindings } from './host-memory.js';
import type { StagePlan } from './model-plan.js';
import { isModelStrategy, type ModelStrategy, type Strategy } from './schema.js';
import { validateStrategy } from './validate.js';
import { type ModelValidation, validateModelStrategy } from './validate-model.js';

export interface CheckOptions {
  readonly memoryCapBytes?: number;
  readonly microbatches?: number;
  /** The folder a model strategy's relative checkpoint path is read from (the strategy file's). */
  readonly baseDir?: string;
}

/** Either form of strategy file, validated: a chain of the seed's stage kinds, or a real model's stages. */
export type StrategyCheck =
  | {
      readonly family: 'chain';
      readonly strategy: Strategy | null;
      readonly plans: readonly StagePlan[];
      readonly findings: readonly Finding[];
    }
  | ({ readonly family: 'model' } & ModelValidation);

/** Validates a strategy file of either form (see `validateStrategy` and `validateModelStrategy`). */
export function checkStrategy(value: unknown, options: CheckOptions = {}): StrategyCheck {
  if (isModelStrategy(value)) {
    const checked = validateModelStrategy(value, options);
    const host =
      checked.strategy && checked.source
        ? hostMemoryFindings(
            estimateModelHostMemory(checked.strategy, checked.source.config.vocabSize, checked.plans.length),
          )
        : [];
    return { family: 'model', ...checked, findings: [...checked.findings, ...host] };
  }
  const checked = validateStrategy(value, options);
  const host = checked.strategy
    ? hostMemoryFindings(estimateChainHostMemory(checked.strategy, checked.plans))
    : [];
  return { family: 'chain', ...checked, findings: [...checked.findings, ...host] };
}

export type AnyStrategy = Strategy | ModelStrategy;
