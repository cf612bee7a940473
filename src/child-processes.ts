import type { ChildProcess } from 'node:child_process';

const alive = new Set<ChildProcess>();

// installed when this module loads, so it runs before exit handlers of the modules that import it
process.on('exit', () => {
  for (const running of alive) {
    try {
      if (running.pid !== undefined) process.kill(running.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
});

/**
 * Kills `child` (SIGKILL) if this process exits while the child still runs: an embedded
 * nats-server, or a process a test started, never outlives us. Exit handlers cannot wait, so this
 * is the last resort; a clean stop should end the child first.
 */
export function killOnExit(child: ChildProcess): void {
  alive.add(child);
  const forget = () => alive.delete(child);
  child.once('exit', forget);
  child.once('error', forget); // spawn failed: no 'exit' follows
}
