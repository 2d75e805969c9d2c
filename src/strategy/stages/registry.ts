import { ParallelError } from '../../errors.js';
import { aggregationKind } from './aggregation.js';
import { embeddingKind } from './embedding.js';
import type { ChainStageKind } from './kind.js';
import { linearFields, linearKind } from './linear.js';

/** Every stage kind of the seed's chain models, in one table: a new kind is one more entry. */
export const CHAIN_STAGE_KINDS: readonly ChainStageKind[] = [embeddingKind, linearKind, aggregationKind];

/** The kinds' own fields of a stage object (typed here, so a stage spec knows them). */
export const CHAIN_KIND_FIELDS = { ...linearFields };

/** Every spelling a strategy file may use, for the schema's enum. */
export const CHAIN_STAGE_NAMES = CHAIN_STAGE_KINDS.flatMap((k) => k.names) as [string, ...string[]];

/** The kind a stage's `kind` field names (a canonical name or another spelling of it). */
export function chainKind(name: string): ChainStageKind {
  const kind = CHAIN_STAGE_KINDS.find((k) => k.kind === name || k.names.includes(name));
  if (!kind) {
    throw new ParallelError('STRATEGY', `no stage kind '${name}'`, {
      where: 'stage kind',
      fix: `use one of ${CHAIN_STAGE_NAMES.join(', ')}`,
    });
  }
  return kind;
}
