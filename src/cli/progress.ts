import cliProgress from 'cli-progress';

/** A progress bar on stderr, only on a terminal; otherwise every call is a no-op. */
export interface Progress {
  update(value: number): void;
  stop(): void;
}

export function progressBar(total: number, unit: string, enabled = process.stderr.isTTY === true): Progress {
  if (!enabled || total <= 0) return { update() {}, stop() {} };
  const bar = new cliProgress.SingleBar(
    { stream: process.stderr, format: `{bar} {percentage}% | {value}/{total} ${unit} | {eta_formatted} left`, hideCursor: true, fps: 5 },
    cliProgress.Presets.shades_classic,
  );
  bar.start(total, 0);
  return { update: (value) => bar.update(value), stop: () => bar.stop() };
}

/** A count for people: rounded, with thousands separators (`1,234,567`). */
export function fmt(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}
