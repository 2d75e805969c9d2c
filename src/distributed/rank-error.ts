import { type ErrorCode, ParallelError, type ParallelErrorOptions } from '../errors.js';

/**
 * A failure of a multi-process world that one rank caused: it died, left, stopped answering or was
 * refused. `rank` names it (the culprit, not the rank that noticed), so a caller can branch on it.
 */
export class RankError extends ParallelError {
  readonly rank: number;

  constructor(code: ErrorCode, rank: number, message: string, options: ParallelErrorOptions = {}) {
    super(code, message, options);
    this.rank = rank;
  }
}

/** What an ABORT frame carries: enough to raise the same error on the rank that receives it. */
export interface AbortNotice {
  readonly code: ErrorCode;
  readonly message: string;
  readonly rank: number | null;
  readonly where?: string;
  readonly fix?: string;
}

export function toNotice(error: unknown): AbortNotice {
  if (error instanceof ParallelError) {
    return {
      code: error.code,
      message: error.message,
      rank: error instanceof RankError ? error.rank : null,
      where: error.where,
      fix: error.fix,
    };
  }
  return { code: 'RANK_LOST', message: error instanceof Error ? error.message : String(error), rank: null };
}

/** The error a rank raises when a peer's ABORT reaches it: the peer's own, saying who reported it. */
export function fromNotice(notice: AbortNotice, reporter: number): ParallelError {
  const message = `${notice.message} (reported by rank ${reporter})`;
  const options = { where: notice.where, fix: notice.fix };
  return new RankError(notice.code, notice.rank ?? reporter, message, options);
}
