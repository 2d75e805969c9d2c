import { ParallelError } from '../../errors.js';
import { LossRace } from './loss-race.js';

/**
 * Whether a device can still be used, and the library's errors for when it cannot: the first asynchronous
 * validation or out-of-memory error, the loss of the device, its destruction. Every wait on the device goes
 * through `wait`, so none hangs on a lost device or ends in Dawn's bare AbortError.
 */
export class DeviceHealth {
  private firstError: ParallelError | null = null;
  private lost: ParallelError | null = null;
  private readonly lossRace = new LossRace();
  private destroyedFlag = false;

  constructor(
    private readonly name: string,
    private readonly gpu: GPUDevice,
  ) {
    gpu.onuncapturederror = (event: GPUUncapturedErrorEvent) => {
      const code = event.error instanceof GPUOutOfMemoryError ? 'OUT_OF_MEMORY' : 'VALIDATION';
      this.firstError ??= new ParallelError(code, `${name}: ${event.error.message}`, { where: name });
    };
    void gpu.lost.then((info) => {
      this.lost = new ParallelError('DEVICE_LOST', `${name} was lost (${info.reason}): ${info.message}`, {
        where: name,
        fix: 'the driver reset or the device was destroyed; open a new device group',
      });
      this.lossRace.lose(this.lost);
    });
  }

  get destroyed(): boolean {
    return this.destroyedFlag;
  }

  /** The device is being destroyed: waits still pending, and later ones, end as DESTROYED. */
  endWaits(): void {
    this.lossRace.lose(new ParallelError('DESTROYED', `${this.name} was destroyed`, { where: this.name }));
  }

  /** From now on the device is unusable; each wait that ended names what it waited for. */
  markDestroyed(): void {
    this.destroyedFlag = true;
  }

  /**
   * Drops the error handler, as the device is destroyed. Dawn keeps the handler as a global handle: left
   * set, it would keep the device and all it holds alive until exit (bench/RESULTS.md, "Soak"), and the
   * exit itself waits to tear each one down.
   */
  detach(): void {
    this.gpu.onuncapturederror = null;
  }

  assertUsable(where: string): void {
    if (this.destroyedFlag) throw new ParallelError('DESTROYED', `${this.name} was destroyed`, { where });
    if (this.lost) throw this.lost;
  }

  /** Raises the first asynchronous validation or out-of-memory error the device reported. */
  throwIfFailed(): void {
    if (this.lost) throw this.lost;
    const error = this.firstError;
    if (error) {
      this.firstError = null;
      throw error;
    }
  }

  /**
   * Waits for the device, failing with the library's error if the device goes away meanwhile: Dawn rejects
   * a map or a queue wait of a destroyed device with a bare AbortError, which says neither what nor where.
   */
  async wait<T>(work: Promise<T>, op: string): Promise<T> {
    try {
      return await this.lossRace.race(work);
    } catch (error) {
      if (this.destroyedFlag) {
        throw new ParallelError('DESTROYED', `${this.name} was destroyed during ${op}`, {
          where: `${this.name}: ${op}`,
          fix: 'destroy a device group only after the work on it has been awaited',
          cause: error,
        });
      }
      if (this.lost) {
        throw new ParallelError('DEVICE_LOST', `${this.lost.message} (during ${op})`, {
          where: `${this.name}: ${op}`,
          cause: error,
        });
      }
      throw error;
    }
  }
}
