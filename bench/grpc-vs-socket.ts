import { spawn } from 'node:child_process';
import { createConnection, createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { Client, credentials, Metadata, Server, ServerCredentials } from '@grpc/grpc-js';
import { channelOptions, DATA_SERVICE, serverOptions } from '../src/distributed/grpc-services.js';

/**
 * The transport alone, one way between two processes on loopback: the same bytes in 512 KiB messages over
 * a grpc-js stream (the world's own service definition and channel options) and over a plain TCP socket.
 * Run as `node grpc-vs-socket.js serve grpc|net BYTES`, this file is the sending side.
 */
const SELF = fileURLToPath(import.meta.url);
const MESSAGE = 512 * 1024;

async function serve(kind: string, bytes: number): Promise<void> {
  const block = Buffer.alloc(MESSAGE);
  const pump = async (write: (b: Buffer) => boolean, drain: (done: () => void) => void) => {
    for (let sent = 0; sent < bytes; sent += MESSAGE) if (!write(block)) await new Promise<void>(drain);
  };
  if (kind === 'grpc') {
    const server = new Server(serverOptions());
    server.addService(DATA_SERVICE, {
      exchange: (call: import('@grpc/grpc-js').ServerDuplexStream<Buffer, Buffer>) =>
        call.once(
          'data',
          () =>
            void pump(
              (b) => call.write(b),
              (done) => call.once('drain', done),
            ),
        ),
    });
    server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (_e, port) =>
      process.stdout.write(`${port}\n`),
    );
  } else {
    const server = createServer((socket) =>
      socket.once(
        'data',
        () =>
          void pump(
            (b) => socket.write(b),
            (done) => socket.once('drain', done),
          ),
      ),
    );
    server.listen(0, '127.0.0.1', () =>
      process.stdout.write(`${(server.address() as { port: number }).port}\n`),
    );
  }
}

/** Bytes per second the receiving side (this process) took in, from its request to the last byte. */
async function receive(kind: string, port: number, bytes: number): Promise<number> {
  let got = 0;
  let close = () => {};
  const start = performance.now();
  await new Promise<void>((resolve) => {
    const take = (b: Buffer) => {
      got += b.length;
      if (got >= bytes) resolve();
    };
    if (kind === 'grpc') {
      const client = new Client(`127.0.0.1:${port}`, credentials.createInsecure(), channelOptions(30_000));
      const path = DATA_SERVICE.exchange.path;
      const call = client.makeBidiStreamRequest(
        path,
        (b: Buffer) => b,
        (b: Buffer) => b,
        new Metadata(),
      );
      call.on('data', take);
      call.on('error', () => undefined);
      call.write(Buffer.from('go'));
      close = () => {
        call.cancel();
        client.close();
      };
    } else {
      const socket = createConnection({ host: '127.0.0.1', port });
      socket.on('data', take);
      socket.write('go');
      close = () => socket.destroy();
    }
  });
  const rate = bytes / ((performance.now() - start) / 1000);
  close();
  return rate;
}

/** grpc-js and a plain socket, one way between two processes, `bytes` each; bytes per second. */
export async function grpcVsSocket(bytes: number): Promise<{ grpc: number; net: number }> {
  const rates: Record<string, number> = {};
  for (const kind of ['net', 'grpc']) {
    const server = spawn(process.execPath, [SELF, 'serve', kind, String(bytes)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const port = await new Promise<number>((resolve) =>
      server.stdout.once('data', (d: Buffer) => resolve(Number(String(d).trim()))),
    );
    try {
      rates[kind] = await receive(kind, port, bytes);
    } finally {
      server.kill('SIGKILL');
    }
  }
  return { grpc: rates.grpc!, net: rates.net! };
}

if (process.argv[2] === 'serve') void serve(process.argv[3]!, Number(process.argv[4]));
