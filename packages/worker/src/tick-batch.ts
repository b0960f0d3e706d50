/**
 * Gathers what arrives in one turn of the event loop into one batch: the
 * batch is handed on at the end of the turn (`setImmediate`), or at once
 * when it reaches `max`. The claim and completion batchers are built on it.
 */
export class TickBatch<T> {
  #waiting: T[] = [];
  #scheduled = false;

  constructor(
    private readonly max: number,
    private readonly flush: (batch: T[]) => Promise<void>,
  ) {}

  add(item: T): void {
    this.#waiting.push(item);
    if (this.#waiting.length >= this.max) {
      void this.#run();
    } else if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(() => void this.#run());
    }
  }

  async #run(): Promise<void> {
    this.#scheduled = false;
    const batch = this.#waiting;
    this.#waiting = [];
    if (batch.length > 0) await this.flush(batch);
  }
}
