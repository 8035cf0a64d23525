/**
 * Which process listens on a TCP port, read from Linux's /proc the way `ss -ltnp` does, so an
 * "address in use" start-up error can name the holder instead of leaving the user to hunt for it.
 * Best effort: another user's process (without root) or another network namespace stays invisible,
 * and then the message says how to look.
 */
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { isIP, type Server } from 'node:net';

export interface PortHolder {
  pid: number;
  /** The command line, shortened for one line of output. */
  command: string;
}

const TCP_LISTEN = '0A';
const COMMAND_MAX = 80;

/**
 * An address as /proc/net/tcp{,6} writes it (hex, each 32-bit word in host byte order, which is
 * little-endian on every platform nbswarm runs on) → the usual text form.
 */
export function decodeProcAddress(hex: string): string {
  const words = hex.match(/.{8}/g) ?? [];
  const bytes = words.flatMap((w) => [w.slice(6, 8), w.slice(4, 6), w.slice(2, 4), w.slice(0, 2)].map((b) => parseInt(b, 16)));
  if (bytes.length === 4) return bytes.join('.');
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i] << 8) | bytes[i + 1]).toString(16));
  // An IPv4 socket on a dual-stack listener shows as ::ffff:a.b.c.d.
  if (groups.slice(0, 6).join(':') === '0:0:0:0:0:ffff') return bytes.slice(12).join('.');
  return canonicalIPv6(groups.join(':'));
}

/** The compressed form ("::1"), so two spellings of one address compare equal. */
function canonicalIPv6(address: string): string {
  return new URL(`http://[${address}]/`).hostname.slice(1, -1);
}

/** Whether a listener on `held` keeps a new listener on `wanted` (same port) from binding. */
export function addressesConflict(held: string, wanted: string): boolean {
  const wildcard = (a: string) => a === '0.0.0.0' || a === '::';
  const family = isIP(wanted);
  if (family === 0) return true; // a host name: whatever it resolves to may clash
  const want = family === 6 ? canonicalIPv6(wanted) : wanted;
  return held === want || wildcard(held) || wildcard(want);
}

function listeningInodes(port: number, address: string): Set<string> {
  const inodes = new Set<string>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue; // no IPv6, or not Linux
    }
    for (const line of text.split('\n').slice(1)) {
      // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
      const f = line.trim().split(/\s+/);
      if (f.length < 10 || f[3] !== TCP_LISTEN) continue;
      const [hexAddr, hexPort] = f[1].split(':');
      if (parseInt(hexPort, 16) !== port) continue;
      if (addressesConflict(decodeProcAddress(hexAddr), address)) inodes.add(f[9]);
    }
  }
  return inodes;
}

function commandLine(pid: string): string {
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
    const text = argv.join(' ');
    return text.length > COMMAND_MAX ? `${text.slice(0, COMMAND_MAX - 1)}…` : text;
  } catch {
    return '';
  }
}

/** The processes holding a listening socket that conflicts with `address:port`; empty when none is visible. */
export function findPortHolders(port: number, address: string): PortHolder[] {
  const inodes = listeningInodes(port, address);
  if (inodes.size === 0) return [];
  const wanted = new Set([...inodes].map((i) => `socket:[${i}]`));
  const holders: PortHolder[] = [];
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue; // gone, or not ours to read
    }
    const holds = fds.some((fd) => {
      try {
        return wanted.has(readlinkSync(`/proc/${pid}/fd/${fd}`));
      } catch {
        return false;
      }
    });
    if (holds) holders.push({ pid: Number(pid), command: commandLine(pid) });
  }
  return holders;
}

/** "port 6443 on 127.0.0.1 is in use by PID 1234 (node dist/nbswarm.mjs up)", or how to find out. */
export function describePortInUse(port: number, address: string): string {
  let holders: PortHolder[] = [];
  try {
    holders = findPortHolders(port, address);
  } catch {
    // /proc unreadable: fall through to the generic advice
  }
  const where = `port ${port} on ${address} is in use`;
  if (holders.length === 0) return `${where} (by a process not visible here; \`ss -ltnp 'sport = :${port}'\` as root names it)`;
  return `${where} by ${holders.map((h) => `PID ${h.pid}${h.command ? ` (${h.command})` : ''}`).join(', ')}`;
}

/** A port that is taken, said in one line with what to do. */
export class PortInUseError extends Error {
  constructor(
    message: string,
    readonly hint: string,
  ) {
    super(message);
  }
}

/**
 * Listen on `address:port`; a port in use becomes a PortInUseError naming its holder and the flag
 * to change (`--metrics-port`), any other failure keeps its error.
 */
export function listenOrExplain(server: Server, port: number, address: string, flag: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      server.off('listening', onListening);
      if (err.code === 'EADDRINUSE') reject(new PortInUseError(describePortInUse(port, address), `pass another ${flag}, or stop that process`));
      else if (err.code === 'EADDRNOTAVAIL')
        reject(
          new PortInUseError(
            `cannot listen on ${address}:${port}: no such address on this machine`,
            `pass an address of this machine to the option that sets it`,
          ),
        );
      else if (err.code === 'EACCES')
        reject(new PortInUseError(`cannot listen on ${address}:${port}: permission denied`, `ports below 1024 need root; pass another ${flag}`));
      else reject(err);
    };
    const onListening = () => {
      server.off('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(port, address);
  });
}
