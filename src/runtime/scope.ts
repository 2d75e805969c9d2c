/** Anything that owns device memory and gives it back: tensors, distributed tensors, modules. */
export interface Freeable {
  free(): void;
}

/**
 * Frees, on dispose, what was made inside it: the intermediates of one forward step, so that an early
 * return or a thrown error leaks nothing (tfjs's `tidy`, with `using`). What the step hands on is `keep`t.
 */
export class TensorScope implements Disposable {
  private readonly owned = new Set<Freeable>();

  /** Takes `value` into the scope and returns it, for use in an expression. */
  track<T extends Freeable>(value: T): T {
    this.owned.add(value);
    return value;
  }

  /** Lets `value` outlive the scope: the caller owns it now. */
  keep<T extends Freeable>(value: T): T {
    this.owned.delete(value);
    return value;
  }

  /** Frees one tracked value now, before the scope ends (a large intermediate no longer read). */
  drop(value: Freeable): void {
    if (this.owned.delete(value)) value.free();
  }

  [Symbol.dispose](): void {
    for (const value of this.owned) value.free();
    this.owned.clear();
  }
}

/** Runs `body` in a scope and frees everything it tracked except the result. */
export async function tidy<T extends Freeable>(body: (scope: TensorScope) => Promise<T>): Promise<T> {
  using scope = new TensorScope();
  return scope.keep(await body(scope));
}
