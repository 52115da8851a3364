/**
 * What a process in a sandbox holds, read from /proc by the test process (the sandbox shares the PID
 * namespace): resident memory, and its file descriptors sorted by what they are. TCP sockets are
 * told apart through the process's own /proc/<pid>/net/tcp (the table of its network namespace):
 * connections to an upstream address, connections accepted on a local port, listeners.
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

/** VmRSS of `pid` in bytes. */
export function rssBytes(pid: number): number {
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!match) throw new Error(`no VmRSS for ${pid}`);
  return Number(match[1]) * 1024;
}

export interface FdSnapshot {
  total: number;
  /** Established TCP connections to `upstream` (a connection pool). */
  upstream: number;
  /** TCP connections accepted on one of `localPorts` (clients). */
  clients: number;
  listening: number;
  /** Regular files under `dataDir`. */
  dataFiles: number;
  /** Everything else: other sockets, pipes, eventfds, epoll, files elsewhere. */
  other: number;
}

interface TcpEntry {
  local: string;
  remote: string;
  state: string;
}

/** `0100007F:01BB` -> `127.0.0.1:443` (IPv4 only; IPv6 entries keep their hex form). */
function address(hex: string): string {
  const [ip = '', port = ''] = hex.split(':');
  if (ip.length !== 8) return hex;
  const bytes = [0, 2, 4, 6].map((i) => parseInt(ip.slice(i, i + 2), 16)).reverse();
  return `${bytes.join('.')}:${parseInt(port, 16)}`;
}

function tcpTable(pid: number): Map<string, TcpEntry> {
  const table = new Map<string, TcpEntry>();
  for (const file of ['tcp', 'tcp6']) {
    let text: string;
    try {
      text = readFileSync(`/proc/${pid}/net/${file}`, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      if (fields.length < 10) continue;
      table.set(fields[9]!, { local: address(fields[1]!), remote: address(fields[2]!), state: fields[3]! });
    }
  }
  return table;
}

export function fdSnapshot(pid: number, options: { upstream: string; localPorts: number[]; dataDir: string }): FdSnapshot {
  const tcp = tcpTable(pid);
  const snapshot: FdSnapshot = { total: 0, upstream: 0, clients: 0, listening: 0, dataFiles: 0, other: 0 };
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    let target: string;
    try {
      target = readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      continue; // closed while we looked
    }
    snapshot.total += 1;
    const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
    const entry = inode === undefined ? undefined : tcp.get(inode);
    if (entry?.state === '0A') snapshot.listening += 1;
    else if (entry && entry.remote === options.upstream) snapshot.upstream += 1;
    else if (entry && options.localPorts.some((port) => entry.local.endsWith(`:${port}`))) snapshot.clients += 1;
    else if (target.startsWith(`${options.dataDir}/`)) snapshot.dataFiles += 1;
    else snapshot.other += 1;
  }
  return snapshot;
}
