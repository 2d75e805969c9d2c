import type { DistributedTensor } from '../collectives/layout.js';
import type { Freeable } from '../runtime/scope.js';

/** A named parameter as the devices hold it (shards over the module's group, or replicas). */
export interface Parameter {
  /** The Hugging Face name it was loaded from. */
  readonly name: string;
  readonly value: DistributedTensor;
}

/** The one module shape: named parameters, freed together. */
export interface Module extends Freeable {
  parameters(): Parameter[];
}

/** The state dict view: every parameter of the modules by name. */
export function stateDict(modules: readonly Module[]): Map<string, DistributedTensor> {
  const out = new Map<string, DistributedTensor>();
  for (const m of modules) for (const p of m.parameters()) out.set(p.name, p.value);
  return out;
}
