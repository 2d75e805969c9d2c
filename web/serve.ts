import { buildWeb } from './build.js';
import { serveStatic } from './server.js';

// `npm run web [-- --port N]`: build the page into dist/web and serve it on loopback until Ctrl-C.
const at = process.argv.indexOf('--port');
const port = at > 0 ? Number(process.argv[at + 1]) : 8080;
const built = await buildWeb();
const server = await serveStatic(built.outDir, port);
const kib = Object.values(built.outputs).reduce((a, b) => a + b, 0) / 1024;
process.stdout.write(
  `built ${built.outDir} (${kib.toFixed(0)} KiB, ${built.inputs.length} sources)\n` +
    `serving ${server.url}: open it in a browser with WebGPU (Chromium: --enable-unsafe-webgpu where it is off)\n`,
);
