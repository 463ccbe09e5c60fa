/**
 * How no llama-server outlives the proxy, in any order of signals, a stopped (SIGSTOP) one included. Each
 * instance is started through a tiny `sh` prologue that becomes the process group leader, starts a watcher,
 * then `exec`s llama-server (same pid, so its parent is the proxy). Two guards, either one enough:
 *
 * - the kernel: where util-linux's `setpriv --pdeathsig` exists, llama-server is exec'd through it, so the
 *   kernel sends it SIGKILL the moment its parent (the proxy) dies, however it dies. SIGKILL ends a stopped
 *   process too. The watcher gets the same, tied to its own parent (llama-server), so it goes with it;
 * - the watcher: it blocks reading a pipe the proxy holds open; when the proxy dies the kernel closes the pipe,
 *   the watcher reads EOF and kills the whole group. It ignores TERM, INT and HUP: the proxy's stop signals
 *   the group, and a watcher killed by that would leave llama-server unguarded if the proxy died before
 *   llama-server did (a stopped llama-server keeps a TERM pending). It stays in the group: the group id cannot
 *   be reused while it lives there, so its kill can only reach that instance.
 *
 * Neither guard survives everything alone: the watcher can be stopped with the group (`kill -STOP -<pgid>`),
 * and pdeathsig is absent without setpriv (or if the proxy dies in the instant between fork and prctl).
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import path from 'node:path';

/** The watcher: reads fd 3 (the proxy's pipe) until EOF, then kills the group ($1) with SIGKILL. */
const WATCHER = 'trap "" TERM INT HUP; while read -r _ <&3; do :; done; kill -9 -"$1"';

function shellQuote(word: string): string {
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/** The shell prologue; `deathSignal` prefixes a command so that it is SIGKILLed when its parent dies. */
function prologue(deathSignal: string): string {
  return [
    'exec 3<&0',
    // stdin of an asynchronous list is /dev/null in sh, hence the explicit fd 3.
    `${deathSignal}/bin/sh -c ${shellQuote(WATCHER)} llama-smart-proxy-watchdog $$ </dev/null >/dev/null 2>&1 &`,
    `exec ${deathSignal}"$@" </dev/null 3<&-`,
  ].join('\n');
}

let setprivPath: string | null | undefined;

/** An absolute `setpriv` that knows --pdeathsig (util-linux 2.33+), found once; null where there is none. */
export function pdeathsigTool(): string | null {
  if (setprivPath !== undefined) return setprivPath;
  setprivPath = null;
  const dirs = [...(process.env.PATH ?? '').split(path.delimiter), '/usr/bin', '/bin', '/usr/sbin', '/sbin'];
  for (const dir of new Set(dirs.filter((d) => path.isAbsolute(d)))) {
    const candidate = path.join(dir, 'setpriv');
    try {
      accessSync(candidate, constants.X_OK);
    } catch {
      continue;
    }
    // Older setpriv lacks the option, and a container may forbid prctl: try it once for real.
    const probe = spawnSync(candidate, ['--pdeathsig', 'KILL', '--', '/bin/sh', '-c', 'exit 0'], { stdio: 'ignore', timeout: 5000 });
    if (probe.status === 0) setprivPath = candidate;
    break;
  }
  return setprivPath;
}

/**
 * The command and arguments that run `binary args...` under the watchdog. Spawn it with `detached: true` and a
 * piped stdin, from the process whose death must end the instance (the parent is what pdeathsig watches).
 */
export function watchdogCommand(binary: string, args: readonly string[], options: { setpriv?: string | null } = {}): { command: string; args: string[] } {
  const setpriv = options.setpriv === undefined ? pdeathsigTool() : options.setpriv;
  const deathSignal = setpriv ? `${shellQuote(setpriv)} --pdeathsig KILL -- ` : '';
  return { command: '/bin/sh', args: ['-c', prologue(deathSignal), 'llama-smart-proxy-instance', binary, ...args] };
}
