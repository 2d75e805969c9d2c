import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

// iproute2 installs into /usr/sbin, which a non-login root shell may not have on its PATH.
const IP = existsSync('/usr/sbin/ip') ? '/usr/sbin/ip' : 'ip';
const TC = existsSync('/usr/sbin/tc') ? '/usr/sbin/tc' : 'tc';

/**
 * A lab of "hosts" on this machine: one network namespace per host, each joined by a veth pair to a bridge
 * that lives in a namespace of its own (nothing is added to the machine's own network), optionally rate
 * limited with tbf both ways (this kernel has tbf; it has no netem, so no delay emulation). Addresses are
 * 198.18.0.0/24, the range set aside for benchmarking (RFC 2544), and exist only inside the lab.
 *
 * Needs root and iproute2. Namespaces are named after the owning process, so a lab left by a process that
 * died is found and removed by the next `sweep`; `destroy` runs on exit too, even when a test fails.
 */
export class NetnsLab {
  readonly hosts: readonly { readonly name: string; readonly address: string }[];
  private readonly switchName: string;
  private destroyed = false;
  private readonly onExit = () => this.destroy();

  private constructor(
    readonly id: string,
    count: number,
  ) {
    this.switchName = `${id}-sw`;
    this.hosts = Array.from({ length: count }, (_, i) => ({
      name: `${id}-h${i}`,
      address: `198.18.0.${i + 1}`,
    }));
  }

  /** Whether this process may build a lab (root, `ip` present, namespaces allowed); the reason if not. */
  static unavailable(): string | null {
    if (process.getuid?.() !== 0) return 'network namespaces need root';
    const probe = `wgp${process.pid}-probe`;
    const added = spawnSync(IP, ['netns', 'add', probe], { encoding: 'utf8' });
    if (added.error) return `iproute2 is missing (${added.error.message}); apt-get install iproute2`;
    if (added.status !== 0) return `ip netns add failed: ${added.stderr.trim()}`;
    spawnSync(IP, ['netns', 'del', probe]);
    return null;
  }

  /** Removes labs whose owning process is gone (a run that was killed before it could clean up). */
  static sweep(): void {
    const list = spawnSync(IP, ['netns', 'list'], { encoding: 'utf8' }).stdout ?? '';
    for (const line of list.split('\n')) {
      const name = line.split(' ')[0] ?? '';
      const owner = /^wgp(\d+)-/.exec(name)?.[1];
      if (owner && !alive(Number(owner))) removeNamespace(name);
    }
  }

  /** `count` hosts on one bridge; `rateMbit` limits what each host sends and receives. */
  static create(count: number, options: { rateMbit?: number; tag?: string } = {}): NetnsLab {
    NetnsLab.sweep();
    const lab = new NetnsLab(`wgp${process.pid}-${options.tag ?? 'a'}`, count);
    process.once('exit', lab.onExit);
    try {
      const sw = lab.switchName;
      ip('netns', 'add', sw);
      ip('-n', sw, 'link', 'add', 'br0', 'type', 'bridge');
      ip('-n', sw, 'link', 'set', 'br0', 'up');
      lab.hosts.forEach((host, i) => {
        ip('netns', 'add', host.name);
        ip('-n', sw, 'link', 'add', `h${i}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', host.name);
        ip('-n', sw, 'link', 'set', `h${i}`, 'master', 'br0', 'up');
        ip('-n', host.name, 'addr', 'add', `${host.address}/24`, 'dev', 'eth0');
        ip('-n', host.name, 'link', 'set', 'eth0', 'up');
        ip('-n', host.name, 'link', 'set', 'lo', 'up');
        if (options.rateMbit) {
          // burst must hold a rate's worth of one timer tick (1 Gbit/s at HZ=250: 500 KB); latency bounds the queue.
          const tbf = ['root', 'tbf', 'rate', `${options.rateMbit}mbit`, 'burst', '1mb', 'latency', '20ms'];
          run(TC, ['-n', host.name, 'qdisc', 'add', 'dev', 'eth0', ...tbf]);
          run(TC, ['-n', sw, 'qdisc', 'add', 'dev', `h${i}`, ...tbf]);
        }
      });
    } catch (error) {
      lab.destroy();
      throw error;
    }
    return lab;
  }

  /** Starts a program inside host `i`'s namespace, in a process group of its own (so it can be stopped whole). */
  spawn(i: number, argv: readonly string[], env: NodeJS.ProcessEnv = process.env): ChildProcess {
    return spawn(IP, ['netns', 'exec', this.hosts[i]!.name, ...argv], {
      env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  }

  /** The namespaces of this lab that still exist (a test checks none is left). */
  remaining(): string[] {
    const list = spawnSync(IP, ['netns', 'list'], { encoding: 'utf8' }).stdout ?? '';
    const names = new Set(list.split('\n').map((l) => l.split(' ')[0]));
    return [this.switchName, ...this.hosts.map((h) => h.name)].filter((n) => names.has(n));
  }

  /** Kills every process still inside the lab's namespaces, then deletes them (and with them the links). */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    process.off('exit', this.onExit);
    for (const name of [...this.hosts.map((h) => h.name), this.switchName]) removeNamespace(name);
  }
}

function removeNamespace(name: string): void {
  const pids = spawnSync(IP, ['netns', 'pids', name], { encoding: 'utf8' }).stdout ?? '';
  for (const pid of pids.split(/\s+/).filter(Boolean)) {
    try {
      process.kill(Number(pid), 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
  spawnSync(IP, ['netns', 'del', name]);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function ip(...args: string[]): void {
  run(IP, args);
}

function run(cmd: string, args: readonly string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0)
    throw new Error(`${cmd} ${args.join(' ')} failed: ${(r.stderr || r.error?.message || '').trim()}`);
}
