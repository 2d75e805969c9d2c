/**
 * The browser seams, checked by the compiler (web/tsconfig.json): each `.browser.ts` twin exports what its
 * Node module exports, with the same types, so the page's bundle links against the same interface.
 */

import type * as ShaderFilesBrowser from '../src/kernels/webgpu/shader-files.browser.js';
import type * as ShaderFiles from '../src/kernels/webgpu/shader-files.js';
import type * as CheckpointBrowser from '../src/models/checkpoint/checkpoint.browser.js';
import type * as CheckpointNode from '../src/models/checkpoint/checkpoint.js';
import type * as ConfigFileBrowser from '../src/models/config-file.browser.js';
import type * as ConfigFile from '../src/models/config-file.js';
import type * as OpenGpuJsBrowser from '../src/runtime/gpujs/open-gpujs.browser.js';
import type * as OpenGpuJs from '../src/runtime/gpujs/open-gpujs.js';
import type * as HostInfoBrowser from '../src/runtime/host-info.browser.js';
import type * as HostInfo from '../src/runtime/host-info.js';
import type * as ThreadCpuBrowser from '../src/runtime/thread-cpu.browser.js';
import type * as ThreadCpu from '../src/runtime/thread-cpu.js';
import type * as NativeStderrBrowser from '../src/runtime/webgpu/native-stderr.browser.js';
import type * as NativeStderr from '../src/runtime/webgpu/native-stderr.js';
import type * as OpenWebGpuBrowser from '../src/runtime/webgpu/open-webgpu.browser.js';
import type * as OpenWebGpu from '../src/runtime/webgpu/open-webgpu.js';
import type * as CheckpointSourceBrowser from '../src/strategy/checkpoint-source.browser.js';
import type * as CheckpointSource from '../src/strategy/checkpoint-source.js';

type Twin<Node, Browser extends Node> = [Node, Browser];

// A class with a private constructor is nominal: the twin is checked through what callers use of it.
type CheckpointApi = {
  readonly SINGLE_FILE: string;
  readonly INDEX_FILE: string;
  open(
    dir: string,
  ): Pick<CheckpointNode.Checkpoint, 'names' | 'has' | 'info' | 'readF32' | 'close' | 'bytesRead'>;
  write: typeof CheckpointNode.Checkpoint.write;
};
type CheckpointApiOf<M extends typeof CheckpointNode | typeof CheckpointBrowser> = {
  readonly SINGLE_FILE: M['SINGLE_FILE'];
  readonly INDEX_FILE: M['INDEX_FILE'];
  open: M['Checkpoint']['open'];
  write: M['Checkpoint']['write'];
};

export type BrowserSeams = [
  Twin<typeof ConfigFile, typeof ConfigFileBrowser>,
  Twin<typeof HostInfo, typeof HostInfoBrowser>,
  Twin<typeof OpenGpuJs, typeof OpenGpuJsBrowser>,
  Twin<typeof ThreadCpu, typeof ThreadCpuBrowser>,
  Twin<typeof OpenWebGpu, typeof OpenWebGpuBrowser>,
  Twin<typeof NativeStderr, typeof NativeStderrBrowser>,
  Twin<typeof ShaderFiles, typeof ShaderFilesBrowser>,
  Twin<typeof CheckpointSource, typeof CheckpointSourceBrowser>,
  Twin<CheckpointApi, CheckpointApiOf<typeof CheckpointNode>>,
  Twin<CheckpointApi, CheckpointApiOf<typeof CheckpointBrowser>>,
];
