/** A binary min-heap of (time, address): which buffer expires next in event time. */
export interface Deadline {
  readonly at: number;
  readonly address: string;
}

export class DeadlineHeap {
  private readonly items: Deadline[] = [];

  get size(): number {
    return this.items.length;
  }

  peek(): Deadline | undefined {
    return this.items[0];
  }

  push(item: Deadline): void {
    const a = this.items;
    a.push(item);
    let i = a.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (a[parent]!.at <= item.at) break;
      a[i] = a[parent]!;
      i = parent;
    }
    a[i] = item;
  }

  /** Every entry due before `time`, without removing any (order unspecified). */
  *below(time: number): Generator<Deadline> {
    const a = this.items;
    const stack = [0];
    while (stack.length > 0) {
      const i = stack.pop()!;
      if (i >= a.length || a[i]!.at >= time) continue;
      yield a[i]!;
      stack.push(2 * i + 1, 2 * i + 2);
    }
  }

  pop(): Deadline | undefined {
    const a = this.items;
    const top = a[0];
    const last = a.pop();
    if (a.length === 0 || last === undefined) return top;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      let best = last.at;
      if (l < a.length && a[l]!.at < best) {
        m = l;
        best = a[l]!.at;
      }
      if (r < a.length && a[r]!.at < best) m = r;
      if (m === i) break;
      a[i] = a[m]!;
      i = m;
    }
    a[i] = last;
    return top;
  }
}
