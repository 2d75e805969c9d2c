/** What one MoE layer did in one forward (one microbatch): counted on the host from the routing plan. */
export interface MoeStep {
  readonly stage: number;
  readonly layer: number;
  readonly tokens: number;
  /** Assignments each expert ran, and dropped over its capacity. */
  readonly perExpert: readonly number[];
  readonly dropped: readonly number[];
  /** Rows each expert group ran (the sum of its experts'). */
  readonly perGroup: readonly number[];
  /** Bytes through the host and wall time of the two all_to_alls (dispatch and combine), all rails. */
  readonly allToAllBytes: number;
  readonly allToAllMs: number;
}

/** A stage's expert groups, as the load summary names them. */
export interface ExpertGroupInfo {
  readonly stage: number;
  /** Device names of each group, and the experts each holds. */
  readonly devices: readonly (readonly string[])[];
  readonly experts: readonly (readonly number[])[];
}

export interface ExpertMove {
  readonly stage: number;
  readonly expert: number;
  readonly fromGroup: number;
  readonly toGroup: number;
}

export interface StageLoad {
  readonly stage: number;
  /** Summed over the stage's layers and every step recorded: an expert index names the same slot in each. */
  readonly perExpert: readonly number[];
  readonly dropped: readonly number[];
  readonly perGroup: readonly number[];
  readonly busiestGroup: {
    readonly group: number;
    readonly devices: readonly string[];
    readonly rows: number;
  };
  readonly busiestExpert: { readonly expert: number; readonly tokens: number };
  /** Moves that lower the busiest group's rows, greedily, and the busiest group's rows after them. */
  readonly moves: readonly ExpertMove[];
  readonly maxGroupRowsAfter: number;
}

export interface ExpertLoadSummary {
  readonly steps: number;
  readonly allToAllBytes: number;
  readonly allToAllMs: number;
  readonly stages: readonly StageLoad[];
}

/**
 * The measured balance of a model's MoE layers: every layer's counts for every forward, and per stage the
 * totals, the busiest expert group and expert, and which experts to move where (the plan places experts
 * per stage, the same in all its layers, so a move is judged on the stage's summed load).
 */
export class ExpertLoad {
  readonly steps: MoeStep[] = [];
  private readonly groups = new Map<number, ExpertGroupInfo>();

  describe(info: ExpertGroupInfo): void {
    this.groups.set(info.stage, info);
  }

  record(step: MoeStep): void {
    this.steps.push(step);
  }

  reset(): void {
    this.steps.length = 0;
  }

  summary(): ExpertLoadSummary {
    const stages = [...this.groups.values()].map((info) => this.stageLoad(info));
    return {
      steps: this.steps.length,
      allToAllBytes: this.steps.reduce((n, s) => n + s.allToAllBytes, 0),
      allToAllMs: this.steps.reduce((n, s) => n + s.allToAllMs, 0),
      stages,
    };
  }

  private stageLoad(info: ExpertGroupInfo): StageLoad {
    const numExperts = info.experts.reduce((n, l) => n + l.length, 0);
    const perExpert = new Array<number>(numExperts).fill(0);
    const dropped = new Array<number>(numExperts).fill(0);
    for (const step of this.steps.filter((s) => s.stage === info.stage)) {
      step.perExpert.forEach((n, e) => {
        perExpert[e]! += n;
      });
      step.dropped.forEach((n, e) => {
        dropped[e]! += n;
      });
    }
    const placement = info.experts.map((list) => [...list]);
    const rowsOf = (list: readonly number[]) => list.reduce((n, e) => n + perExpert[e]!, 0);
    const perGroup = placement.map(rowsOf);
    const busiest = argmax(perGroup);
    const expert = argmax(perExpert);
    const moves = rebalance(info.stage, placement, perExpert);
    return {
      stage: info.stage,
      perExpert,
      dropped,
      perGroup,
      busiestGroup: { group: busiest, devices: info.devices[busiest]!, rows: perGroup[busiest]! },
      busiestExpert: { expert, tokens: perExpert[expert]! },
      moves,
      maxGroupRowsAfter: Math.max(...placement.map(rowsOf)),
    };
  }
}

function argmax(values: readonly number[]): number {
  return values.reduce((best, v, i) => (v > values[best]! ? i : best), 0);
}

/**
 * Greedy: move the expert from the busiest group to the idlest that lowers the larger of the two the most,
 * while a move lowers the busiest group's rows and leaves its group at least one expert. Mutates `placement`.
 */
function rebalance(stage: number, placement: number[][], load: readonly number[]): ExpertMove[] {
  const moves: ExpertMove[] = [];
  const rows = (g: number) => placement[g]!.reduce((n, e) => n + load[e]!, 0);
  for (let step = 0; step < load.length; step++) {
    const totals = placement.map((_, g) => rows(g));
    const from = argmax(totals);
    const to = totals.reduce((best, v, i) => (v < totals[best]! ? i : best), 0);
    if (from === to || placement[from]!.length < 2) break;
    let best: { expert: number; peak: number } | null = null;
    for (const e of placement[from]!) {
      const peak = Math.max(totals[from]! - load[e]!, totals[to]! + load[e]!);
      if (peak < totals[from]! && (!best || peak < best.peak)) best = { expert: e, peak };
    }
    if (!best) break;
    placement[from] = placement[from]!.filter((e) => e !== best.expert);
    placement[to]!.push(best.expert);
    moves.push({ stage, expert: best.expert, fromGroup: from, toGroup: to });
  }
  return moves;
}
