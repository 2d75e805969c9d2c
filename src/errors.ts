import { escapeControl } from './format.js';

/** Every failure this library raises carries one of these codes, so callers can branch without parsing text. */
export type ErrorCode =
  | 'NO_ADAPTER'
  | 'DEVICE_LOST'
  | 'SHADER_COMPILE'
  | 'VALIDATION'
  | 'OUT_OF_MEMORY'
  | 'MEMORY_BUDGET'
  | 'SHAPE'
  | 'DTYPE'
  | 'DEVICE_MISMATCH'
  | 'DESTROYED'
  | 'SPLIT'
  | 'GROUP'
  | 'STRATEGY'
  | 'SCHEDULE'
  | 'IO'
  | 'CHECKPOINT'
  | 'BACKEND'
  | 'INVALID_ARGUMENT'
  /** A rank of a multi-process world died, left or could not be reached. */
  | 'RANK_LOST'
  /** A rank waited longer than its timeout for a peer or the store. */
  | 'TIMEOUT'
  /** A rank was refused at the rendezvous: joined twice or late, another world size or strategy hash. */
  | 'RENDEZVOUS';

export interface ParallelErrorOptions {
  /** Where the problem is: a file, a JSON path, a device, a kernel variant. */
  readonly where?: string;
  /** What the user can do about it. */
  readonly fix?: string;
  readonly cause?: unknown;
}

export class ParallelError extends Error {
  override readonly name = 'ParallelError';
  readonly code: ErrorCode;
  readonly where: string | undefined;
  readonly fix: string | undefined;

  constructor(code: ErrorCode, message: string, options: ParallelErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.where = options.where;
    this.fix = options.fix;
  }

  /** One paragraph for a terminal: what, where, how to fix; never a stack trace. */
  /** For a terminal: a name from a user's file may carry control characters; they are shown escaped. */
  describe(): string {
    const lines = [`error ${this.code}: ${escapeControl(this.message)}`];
    if (this.where) lines.push(`  at: ${escapeControl(this.where)}`);
    if (this.fix) lines.push(`  fix: ${escapeControl(this.fix)}`);
    return lines.join('\n');
  }
}

export function isParallelError(error: unknown, code?: ErrorCode): error is ParallelError {
  return error instanceof ParallelError && (code === undefined || error.code === code);
}
