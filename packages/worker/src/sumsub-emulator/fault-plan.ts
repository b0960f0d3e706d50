/**
 * Faults a test asks the emulator for: the next N requests answer 429
 * (optionally with `Retry-After`), 5xx, or a malformed body.
 */

/** One kind of fault. */
export type Fault =
  | { kind: 'status'; status: number; retryAfter?: string }
  | { kind: 'malformed'; body: 'not-json' | 'wrong-type' };

export class FaultPlan {
  readonly #queue: Fault[] = [];

  /** The next `count` requests get `fault`, after those already planned. */
  add(count: number, fault: Fault): void {
    for (let i = 0; i < count; i++) this.#queue.push(fault);
  }

  /** The fault of this request, if one is planned. */
  take(): Fault | undefined {
    return this.#queue.shift();
  }

  clear(): void {
    this.#queue.length = 0;
  }
}

/** A status answer broken the way `fault` says. */
export function malformedBody(
  fault: Extract<Fault, { kind: 'malformed' }>,
  body: Record<string, unknown>,
): string {
  if (fault.body === 'not-json') return JSON.stringify(body).slice(0, 25);
  return JSON.stringify({ ...body, reviewStatus: 42 });
}
