import { ParallelError } from '../../errors.js';

export interface PipelineSource {
  /** Names the kernel and every parameter of its variant: two different pipelines never share a key. */
  readonly key: string;
  /** Called only when the pipeline is not cached yet. */
  readonly code: () => string;
  readonly constants?: Record<string, number>;
  readonly entryPoint?: string;
}

/**
 * Builds each compute pipeline once per device. Creation runs inside a validation error scope, and a WGSL
 * error comes back as SHADER_COMPILE naming the kernel variant and the compiler's messages.
 */
export class PipelineCache {
  private readonly pipelines = new Map<string, Promise<GPUComputePipeline>>();

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

  private async build(source: PipelineSource): Promise<GPUComputePipeline> {
    const code = source.code();
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
    let pipeline: GPUComputePipeline;
    try {
      pipeline = await this.device.createComputePipelineAsync({
        label: source.key,
        layout: 'auto',
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
