import { SingleBar } from 'cli-progress';

export interface Progress {
  update(done: number, total: number): void;
  stop(): void;
}

/** A progress bar on stderr when it is a terminal; silent otherwise (logs and CI stay clean). */
export function progressBar(label: string, unit = 'microbatches'): Progress | null {
  if (!process.stderr.isTTY) return null;
  const bar = new SingleBar({
    format: `${label} [{bar}] {value}/{total} ${unit}`,
    stream: process.stderr,
    hideCursor: true,
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
