/** Bind groups kept per device; past this the least recently used go (a long run of changing shapes). */
export const BIND_GROUP_CACHE_MAX = 4096;

/**
 * Bind groups by pipeline, parameter slot and buffers. With parameters by content in one uniform buffer
 * (see ParamTable), a kernel run again with the same parameters on the same tensors binds exactly what it
 * bound before, and the cached group is reused instead of made anew (a large part of a small kernel's cost
 * on lavapipe). A group that names
 * a buffer being destroyed is dropped first: a destroyed buffer in a submitted bind group is an error.
 */
export class BindGroupCache {
  private readonly groups = new Map<string, { group: GPUBindGroup; buffers: readonly GPUBuffer[] }>();
  private readonly keysOf = new Map<GPUBuffer, Set<string>>();
  private readonly ids = new WeakMap<GPUBuffer, number>();
  private nextId = 0;
  hits = 0;
  misses = 0;

  constructor(private readonly device: GPUDevice) {}

  get(
    pipelineKey: string,
    layout: GPUBindGroupLayout,
    uniform: GPUBufferBinding | null,
    buffers: readonly GPUBuffer[],
  ): GPUBindGroup {
    const key = `${pipelineKey}|${uniform ? `${this.idOf(uniform.buffer)}@${uniform.offset ?? 0}` : '-'}|${buffers.map((b) => this.idOf(b)).join(',')}`;
    const cached = this.groups.get(key);
    if (cached) {
      this.hits++;
      // Map order is insertion order: moving a hit to the end keeps the oldest first for eviction.
      this.groups.delete(key);
      this.groups.set(key, cached);
      return cached.group;
    }
    this.misses++;
    const entries: GPUBindGroupEntry[] = uniform ? [{ binding: 0, resource: uniform }] : [];
    for (const buffer of buffers) entries.push({ binding: entries.length, resource: { buffer } });
    const group = this.device.createBindGroup({ label: pipelineKey, layout, entries });
    this.groups.set(key, { group, buffers: [...buffers] });
    for (const buffer of buffers) {
      const keys = this.keysOf.get(buffer) ?? new Set<string>();
      keys.add(key);
      this.keysOf.set(buffer, keys);
    }
    if (this.groups.size > BIND_GROUP_CACHE_MAX) this.evict(this.groups.keys().next().value!);
    return group;
  }

  /** Drops every group naming the buffer, before it is destroyed. */
  forget(buffer: GPUBuffer): void {
    const keys = this.keysOf.get(buffer);
    if (!keys) return;
    this.keysOf.delete(buffer);
    for (const key of keys) this.evict(key);
  }

  clear(): void {
    this.groups.clear();
    this.keysOf.clear();
  }

  get size(): number {
    return this.groups.size;
  }

  private evict(key: string): void {
    const entry = this.groups.get(key);
    this.groups.delete(key);
    for (const buffer of entry?.buffers ?? []) {
      const keys = this.keysOf.get(buffer);
      keys?.delete(key);
      if (keys?.size === 0) this.keysOf.delete(buffer);
    }
  }

  private idOf(buffer: GPUBuffer): number {
    let id = this.ids.get(buffer);
    if (id === undefined) {
      id = this.nextId++;
      this.ids.set(buffer, id);
    }
    return id;
  }
}
