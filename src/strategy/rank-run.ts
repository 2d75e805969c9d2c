import { alignClocks } from '../distributed/clock-sync.js';
import { recvJson, sendJson } from '../distributed/json-messages.js';
import type { ProcessGroup } from '../distributed/process-group.js';
import { barrierRanks } from '../distributed/ring.js';
import { prepareChain } from './chain-prepare.js';
import { checkStrategy } from './check-strategy.js';
import { type Finding, hasErrors } from './findings.js';
import { recordRuns, summarizeRuns } from './measure-runs.js';
import { estimateMemory } from './memory-estimate.js';
import type { StagePlan } from './model-plan.js';
import { rankDevices, rankOfDevice, worldFindings } from './rank-plan.js';
import { mergeRankRecords, type RankRecord, rankRecord } from './rank-records.js';
import { rankTransport } from './rank-transport.js';
import {
  chainChecks,
  hostSharing,
  measuredFigures,
  type RunOptions,
  runStrategy,
  type StrategyRun,
  strategyError,
} from './run-strategy.js';
import { rankSchedule } from './schedule.js';
import type { Strategy } from './schema.js';

/**
 * Runs a strategy as one rank of a world (`launch --nprocs N -- run FILE`): every rank validates the same
 * file, opens only the devices the file (or the even split) gives it, runs its lanes of the one schedule
 * with the communications between ranks on the wire, and sends what it measured to rank 0, which puts
 * every rank's clock on its own, merges the runs and checks the final outputs against the CPU reference.
 * Rank 0 gets the world's one run; the others get null. A world of one is the one-process run.
 */
export async function runStrategyOnRanks(
  input: unknown,
  pg: ProcessGroup,
  options: RunOptions = {},
): Promise<StrategyRun | null> {
  if (pg.size === 1) return runStrategy(input, options);
  const checked = checkStrategy(input, {
    memoryCapBytes: options.memoryCapBytes,
    microbatches: options.microbatches,
    baseDir: options.baseDir,
  });
  if (!checked.strategy || hasErrors(checked.findings)) throw strategyError(checked.findings);
  if (checked.family === 'model') {
    throw strategyError([
      ...checked.findings,
      {
        code: 'RANKS_MODEL_STRATEGY',
        severity: 'error',
        path: '$.model',
        message: `a model strategy runs in one process; this world has ${pg.size} ranks`,
        fix: 'run it without launch (or with --nprocs 1), or use a chain strategy across ranks',
      },
    ]);
  }
  return runChainOnRanks(checked.strategy, checked.plans, checked.findings, options, pg);
}

async function runChainOnRanks(
  strategy: Strategy,
  plans: readonly StagePlan[],
  findings: readonly Finding[],
  options: RunOptions,
  pg: ProcessGroup,
): Promise<StrategyRun | null> {
  const m = strategy.batch.microbatches;
  const world = worldFindings(strategy, plans, pg.size);
  if (hasErrors(world)) throw strategyError([...findings, ...world]);
  const ranks = rankDevices(strategy, pg.size);
  const owner = rankOfDevice(ranks);
  const mine = ranks[pg.rank]!;
  const chain = await prepareChain(strategy, plans, options, mine);
  const { group, ctx, elements, schedule, runtimes, weights, ids, backend } = chain;
  try {
    // A communication is this rank's when it holds a device it reads from or writes to.
    const comms = elements
      .filter((e, i) => {
        if (e.kind !== 'comm') return false;
        const near = [elements[i - 1]!, elements[i + 1]!].flatMap((x) =>
          x.kind === 'compute' ? x.stage.devices : [],
        );
        return near.some((d) => owner.get(d) === pg.rank);
      })
      .map((e) => e.index);
    const local = rankSchedule(schedule, { devices: mine, comms });
    const seqLen = strategy.model.seq_len;
    const rows = (strategy.batch.batch_size / m) * seqLen;
    const transport = rankTransport({ pg, owner, ctx, elements, runtimes, group, rows });
    options.onDevicesOpened?.(mine);
    const recorded = await recordRuns(
      {
        group,
        ctx,
        elements,
        schedule: local,
        runtimes,
        batchSize: strategy.batch.batch_size,
        transport,
        rank: pg.rank,
      },
      {
        repeats: options.repeats,
        sequentialBaseline: options.sequentialBaseline,
        beforeRun: () => barrierRanks(pg),
      },
    );
    const clocks = await alignClocks(pg);
    const own = rankRecord(pg.rank, recorded, group.devices);
    if (pg.rank !== 0) {
      await sendJson(pg, 0, own);
      return null;
    }
    const records: RankRecord[] = [own];
    for (let r = 1; r < pg.size; r++) records.push((await recvJson(pg, r)) as RankRecord);
    const merged = mergeRankRecords(records, clocks);
    const measured = summarizeRuns(merged.recorded, elements, m, strategy.batch.batch_size);
    const outputs = [
      ...merged.recorded.pipelined.map((p) => p.run.outputs),
      ...merged.recorded.sequential.map((r) => r.outputs),
    ];
    const checks = chainChecks(plans, weights, ids, seqLen, outputs);
    const first = group.devices[0]!;
    const clockRows = clocks.map((c) => ({
      rank: c.rank,
      offsetMs: c.offsetNs / 1e6,
      rttMs: c.rttNs / 1e6,
      residualMs: c.residualNs / 1e6,
    }));
    return {
      family: 'chain',
      strategy,
      findings: [...findings, ...world],
      schedule,
      memoryEstimate: estimateMemory(strategy, plans),
      seqLen,
      backend: group.backend,
      requestedBackend: backend,
      adapter: first.adapter.name,
      isSoftwareAdapter: first.adapter.isSoftware,
      hasDeviceTimestamps: merged.devices.every((d) => d.timestamps),
      sharing: hostSharing(merged.devices.map((d) => ({ name: d.adapter.name, isSoftware: d.software }))),
      ...measuredFigures(measured),
      checks,
      maxAbsError: checks[0]!.maxAbsError,
      tolerance: checks[0]!.tolerance,
      ranks: {
        worldSize: pg.size,
        devices: ranks,
        clocks: clockRows,
        clockResidualMs: Math.max(...clockRows.map((c) => c.residualMs)),
      },
    };
  } finally {
    chain.destroy();
  }
}
