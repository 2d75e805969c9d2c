import { ParallelError } from '../../errors.js';

export interface PipelineSource {
  /** Names the kernel and every parameter of its variant: two different pipelines never share a key. */
  readonly key: string;
  /** Called only when the pipeline is not cached yet. */
  readonly code: () => string;
  readonly constants?: Record<string, number>;
  readonly entryPoint?: string;
}

const READ_WRITE_BINDING = /@binding\((\d+)\)\s*var\s*<\s*storage\s*,\s*read_write\s*>/g;
const BINDING =
  /@group\(0\)\s*@binding\((\d+)\)\s*var\s*<\s*(uniform|storage(?:\s*,\s*(read|read_write))?)\s*>/g;

/**
 * The bind group layout a shader declares. Explicit rather than 'auto', so that the entry points of one
 * file that use a prefix of its bindings share a layout's shape; a shader declares only the bindings its
 * entry point uses.
 */
export function declaredBindings(code: string): GPUBindGroupLayoutEntry[] {
  return [...code.matchAll(BINDING)]
    .map((m) => {
      const type: GPUBufferBindingType =
        m[2] === 'uniform' ? 'uniform' : m[3] === 'read_write' ? 'storage' : 'read-only-storage';
      return {
        binding: Number(m[1]),
        visibility: GPUShaderStage.COMPUTE,
        buffer: { type },
      };
    })
    .sort((a, b) => a.binding - b.binding);
}

/**
 * The binding numbers of a shader's `read_write` storage buffers: the buffers a dispatch may write, which
 * the device tracks (see BufferUses); `read` ones and uniforms are only read.
 */
export function writableBindings(code: string): ReadonlySet<number> {
  return new Set([...code.matchAll(READ_WRITE_BINDING)].map((m) => Number(m[1])));
}

/**
 * Builds each compute pipeline once per device. Creation runs inside a validation error scope, and a WGSL
 * error comes back as SHADER_COMPILE naming the kernel variant and the compiler's messages.
 */
export class PipelineCache {
  private readonly pipelines = new Map<string, Promise<GPUComputePipeline>>();
  private readonly writable = new Map<string, ReadonlySet<number>>();
  private readonly layouts = new Map<string, GPUBindGroupLayout>();

  constructor(
    private readonly device: GPUDevice,
    private readonly deviceName: string,
    private readonly dumpShader?: (key: string, code: string) => void,
  ) {}

  get size(): number {
    return this.pipelines.size;
  }

  get(source: PipelineSource): Promise<GPUComputePipeline> {
    let pipeline = this.pipelines.get(source.key);
    if (!pipeline) {
      pipeline = this.build(source);
      // A failed build is not cached, so a fixed shader or a retry compiles again.
      pipeline.catch(() => this.pipelines.delete(source.key));
      this.pipelines.set(source.key, pipeline);
    }
    return pipeline;
  }

  /** The bind group layout of a built pipeline (see declaredBindings). */
  bindGroupLayout(key: string): GPUBindGroupLayout {
    const layout = this.layouts.get(key);
    if (!layout) throw new Error(`pipeline ${key} is not built yet`);
    return layout;
  }

  /** The bindings a built pipeline's shader may write (its `read_write` storage buffers). */
  writableBindings(key: string): ReadonlySet<number> {
    const bindings = this.writable.get(key);
    if (!bindings) throw new Error(`pipeline ${key} is not built yet`);
    return bindings;
  }

  private async build(source: PipelineSource): Promise<GPUComputePipeline> {
    const code = source.code();
    this.writable.set(source.key, writableBindings(code));
    this.dumpShader?.(source.key, code);
    const where = `${this.deviceName}, kernel ${source.key}`;
    this.device.pushErrorScope('validation');
    const module = this.device.createShaderModule({ label: source.key, code });
    const info = await module.getCompilationInfo();
    const errors = info.messages.filter((m) => m.type === 'error');
    if (errors.length > 0) {
      await this.device.popErrorScope();
      const text = errors.map((m) => `line ${m.lineNum}:${m.linePos} ${m.message}`).join('; ');
      throw new ParallelError('SHADER_COMPILE', `WGSL for ${source.key} does not compile: ${text}`, {
        where,
      });
    }
    const bindGroupLayout = this.device.createBindGroupLayout({
      label: source.key,
      entries: declaredBindings(code),
    });
    this.layouts.set(source.key, bindGroupLayout);
    const layout = this.device.createPipelineLayout({
      label: source.key,
      bindGroupLayouts: [bindGroupLayout],
    });
    let pipeline: GPUComputePipeline;
    try {
      pipeline = await this.device.createComputePipelineAsync({
        label: source.key,
        layout,
        compute: { module, entryPoint: source.entryPoint ?? 'main', constants: source.constants ?? {} },
      });
    } catch (cause) {
      await this.device.popErrorScope();
      throw new ParallelError(
        'SHADER_COMPILE',
        `pipeline ${source.key} failed: ${(cause as Error).message}`,
        {
          where,
          cause,
        },
      );
    }
    const error = await this.device.popErrorScope();
    if (error) {
      throw new ParallelError(
        'SHADER_COMPILE',
        `pipeline ${source.key} failed validation: ${error.message}`,
        { where },
      );
    }
    return pipeline;
  }
}
