import { SingleBar } from 'cli-progress';

export interface Progress {
  update(done: number, total: number): void;
  stop(): void;
}

/**
 * A progress bar on stderr when it is a terminal, or when the bin wrapper (which pipes stderr to filter
 * Dawn's messages) says its own stderr is one; silent otherwise (logs and CI stay clean).
 */
export function progressBar(label: string, unit = 'microbatches'): Progress | null {
  const wrapped = process.env.WEBGPU_PARALLEL_STDERR_TTY;
  if (!process.stderr.isTTY && !wrapped) return null;
  const bar = new SingleBar({
    format: `${label} [{bar}] {value}/{total} ${unit}`,
    stream: process.stderr,
    hideCursor: true,
    // Through the wrapper's pipe: draw anyway, at the terminal's width.
    noTTYOutput: Boolean(wrapped),
    barsize: wrapped ? Math.max(10, Math.min(40, Number(wrapped) - label.length - 30)) : undefined,
  });
  let started = false;
  return {
    update(done, total) {
      if (!started) {
        bar.start(total, 0);
        started = true;
      }
      bar.update(done);
    },
    stop() {
      if (started) bar.stop();
      started = false;
    },
  };
}
