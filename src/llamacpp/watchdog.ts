/**
 * How no llama-server outlives the proxy, even one killed with SIGKILL: each instance is started through a
 * tiny `sh` prologue that becomes the process group leader, forks a watcher that blocks reading a pipe the
 * proxy holds open, then `exec`s llama-server (same pid). When the proxy dies the kernel closes the pipe, the
 * watcher reads EOF and kills the whole group. The group id cannot be reused while the watcher lives in it,
 * so the kill can only reach that instance.
 */
const PROLOGUE = [
  'exec 3<&0',
  // The watcher: stdin of an asynchronous list is /dev/null in sh, hence the explicit fd 3.
  '{ while read -r _ <&3; do :; done; kill -9 -$$; } </dev/null >/dev/null 2>&1 &',
  'exec "$@" </dev/null 3<&-',
].join('\n');

/** The command and arguments that run `binary args...` under the watchdog. Spawn it with `detached: true` and a piped stdin. */
export function watchdogCommand(binary: string, args: readonly string[]): { command: string; args: string[] } {
  return { command: '/bin/sh', args: ['-c', PROLOGUE, 'llama-smart-proxy-instance', binary, ...args] };
}
