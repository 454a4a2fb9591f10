/**
 * A token bucket: holds up to `capacity`, refills at `capacity / periodMs` per millisecond. Requests
 * take from it when admitted (a reservation) and settlement gives back what they did not use, or takes
 * more when they used more: the level may then go below zero (a debt the refill pays off before the
 * next admission). Pure arithmetic on an explicit clock.
 */
export class TokenBucket {
  private level: number;
  private updatedAt: number;

  constructor(
    private capacityValue: number,
    private readonly periodMs: number,
    now: number,
  ) {
    this.level = capacityValue;
    this.updatedAt = now;
  }

  get capacity(): number {
    return this.capacityValue;
  }

  private refill(now: number): void {
    if (now > this.updatedAt) {
      this.level = Math.min(
        this.capacityValue,
        this.level + ((now - this.updatedAt) * this.capacityValue) / this.periodMs,
      );
    }
    this.updatedAt = Math.max(this.updatedAt, now);
  }

  /** What may be taken now (negative while in debt). */
  available(now: number): number {
    this.refill(now);
    return this.level;
  }

  /**
   * Takes `amount` if that much is there; an amount above the capacity needs a full bucket (and takes
   * the capacity) so that a large request is slow, not impossible.
   */
  tryTake(amount: number, now: number): number | undefined {
    this.refill(now);
    const take = Math.min(amount, this.capacityValue);
    if (this.level < take) return undefined;
    this.level -= take;
    return take;
  }

  /** Settlement: adds back (positive) or takes more (negative, may go into debt). Never above capacity. */
  adjust(delta: number, now: number): void {
    this.refill(now);
    this.level = Math.min(this.capacityValue, this.level + delta);
  }

  /** Milliseconds until `amount` (capped at the capacity) can be taken; 0 when it can now. */
  msUntil(amount: number, now: number): number {
    this.refill(now);
    const need = Math.min(amount, this.capacityValue) - this.level;
    if (need <= 0) return 0;
    return Math.ceil((need * this.periodMs) / this.capacityValue);
  }

  /** Milliseconds until the bucket is full again. */
  msUntilFull(now: number): number {
    return this.msUntil(this.capacityValue, now);
  }

  /** A new capacity (this replica's share changed): the level keeps its fill ratio's floor, never gains. */
  resize(capacity: number, now: number): void {
    if (capacity === this.capacityValue) return;
    this.refill(now);
    this.level = Math.min(this.level, capacity);
    this.capacityValue = capacity;
  }
}
