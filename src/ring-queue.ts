/**
 * A first-in first-out queue on a ring buffer: push at the back, shift at the front, read or
 * replace any item by its position from the front, all in constant time.
 *
 * It exists for the garbage collector as much as for speed. The hot paths keep short-lived items
 * (messages in flight, awaited acks) in long-lived containers, which end up in the old generation.
 * An array that grows or is sliced, or a Map that rehashes, leaves its previous storage behind in
 * the old generation still pointing at the items it held; until the next major collection, that
 * dead storage keeps them alive through every minor one, so they get promoted, and the major
 * collections they bring on stall the engine. Here a slot is cleared as soon as its item leaves,
 * and storage left behind by a growth is emptied first.
 */
export class RingQueue<T> {
  private slots: Array<T | undefined>;
  /** Index of the front item in `slots`. */
  private head = 0;
  private count = 0;

  constructor(capacity = 1024) {
    this.slots = new Array<T | undefined>(2 ** Math.ceil(Math.log2(Math.max(2, capacity)))).fill(undefined);
  }

  get length(): number {
    return this.count;
  }

  push(item: T): void {
    if (this.count === this.slots.length) this.grow();
    this.slots[(this.head + this.count) & (this.slots.length - 1)] = item;
    this.count++;
  }

  /** Removes and returns the front item. */
  shift(): T | undefined {
    if (this.count === 0) return undefined;
    const item = this.slots[this.head];
    this.slots[this.head] = undefined;
    this.head = (this.head + 1) & (this.slots.length - 1);
    this.count--;
    return item;
  }

  /** The front item, left in place. */
  peek(): T | undefined {
    return this.count === 0 ? undefined : this.slots[this.head];
  }

  /** The item `i` places from the front (undefined past the back). */
  at(i: number): T | undefined {
    return i >= 0 && i < this.count ? this.slots[(this.head + i) & (this.slots.length - 1)] : undefined;
  }

  /** Replaces the item `i` places from the front (which must exist). */
  set(i: number, item: T): void {
    if (i < 0 || i >= this.count) throw new RangeError(`no item at ${i} of ${this.count}`);
    this.slots[(this.head + i) & (this.slots.length - 1)] = item;
  }

  /** Empties the queue, clearing every slot. */
  clear(): void {
    this.slots.fill(undefined);
    this.head = 0;
    this.count = 0;
  }

  *[Symbol.iterator](): IterableIterator<T> {
    for (let i = 0; i < this.count; i++) yield this.slots[(this.head + i) & (this.slots.length - 1)] as T;
  }

  private grow(): void {
    const old = this.slots;
    const slots = new Array<T | undefined>(old.length * 2).fill(undefined);
    for (let i = 0; i < this.count; i++) slots[i] = old[(this.head + i) & (old.length - 1)];
    old.fill(undefined);
    this.slots = slots;
    this.head = 0;
  }
}
