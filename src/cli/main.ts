import { Worker } from 'node:worker_threads';
import { Command } from 'commander';
import { isParallelError } from '../errors.js';
import { describeSystem } from '../runtime/system-info.js';
import { formatInfo } from './info.js';
import { addLaunchCommands } from './launch-command.js';
import { addModelCommands } from './model-commands.js';
import { addStrategyCommands } from './strategy-commands.js';
import { addTuneCommand } from './tune-command.js';

export function buildProgram(): Command {
  const program = new Command('webgpu-parallel')
    .description(
      'Run tensor- and pipeline-parallel strategies on WebGPU devices and report what was measured.',
    )
    .option('-v, --verbose', "show Dawn's and the Vulkan loader's own messages")
    .showHelpAfterError();

  program
    .command('info')
    .description('list the WebGPU adapters found, with their features and limits')
    .option('--json', 'print JSON')
    .action(async (options: { json?: boolean }) => {
      const info = await describeSystem();
      process.stdout.write(options.json ? `${JSON.stringify(info, null, 2)}\n` : formatInfo(info));
    });

  addStrategyCommands(program);
  addTuneCommand(program);
  addModelCommands(program);
  addLaunchCommands(program);
  return program;
}

/** The CLI: a typed error prints its code, place and fix, never a stack trace; anything else prints one line. */
export async function main(argv: readonly string[]): Promise<number> {
  try {
    await buildProgram()
      .exitOverride()
      .parseAsync([...argv], { from: 'user' });
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (error) {
    if (isParallelError(error)) {
      process.stderr.write(`${error.describe()}\n`);
      return 1;
    }
    const commanderError = error as { code?: string; exitCode?: number };
    if (typeof commanderError.code === 'string' && commanderError.code.startsWith('commander.')) {
      return commanderError.exitCode ?? 1;
    }
    process.stderr.write(`error: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  }
}

// Under the bin wrapper: when it dies (even by SIGKILL) the run stops with it rather than writing its report
// later to nobody. The IPC channel's disconnect says so once this thread's event loop turns; a pipeline
// compile can hold that for seconds, and a wrapper killed while this process was starting may leave no
// channel at all, so a thread of its own also watches the parent pid the wrapper gave.
const wrapper = Number(process.env.WEBGPU_PARALLEL_WRAPPER_PID);
if (wrapper) {
  // Not for the processes this one starts (a launcher's ranks have wrappers of their own).
  delete process.env.WEBGPU_PARALLEL_WRAPPER_PID;
  new Worker(
    `const check = () => { if (process.ppid !== ${wrapper}) process.kill(process.pid, 'SIGKILL'); };
     check();
     setInterval(check, 100);`,
    { eval: true },
  ).unref();
}
if (process.channel) {
  // The channel alone keeps nothing alive.
  process.channel.unref();
  process.on('disconnect', () => process.exit(143));
  if (!process.connected) process.exit(143);
}
process.exitCode = await main(process.argv.slice(2));
