/**
 * A minimal, deterministic ustar writer for image layers: regular files only, mode 0644, uid/gid 0,
 * mtime 0, entries in the order given. Enough for test layers, and byte-identical on every run
 * (the `tar` program would need --sort, --mtime, --owner and friends to promise the same).
 */
const BLOCK = 512;

export interface TarEntry {
  path: string;
  content: Buffer;
}

export function tar(entries: TarEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const { path, content } of entries) {
    if (Buffer.byteLength(path) > 100) throw new Error(`tar: path longer than 100 bytes: ${path}`);
    const header = Buffer.alloc(BLOCK);
    header.write(path, 0, 100, 'utf8');
    header.write('0000644\0', 100, 'latin1');
    header.write('0000000\0', 108, 'latin1');
    header.write('0000000\0', 116, 'latin1');
    header.write(`${content.length.toString(8).padStart(11, '0')}\0`, 124, 'latin1');
    header.write('00000000000\0', 136, 'latin1');
    header.write('        ', 148, 'latin1');
    header.write('0', 156, 'latin1');
    header.write('ustar\0' + '00', 257, 'latin1');
    header.write('root', 265, 'latin1');
    header.write('root', 297, 'latin1');
    let sum = 0;
    for (const byte of header) sum += byte;
    header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
    parts.push(header, content, Buffer.alloc((BLOCK - (content.length % BLOCK)) % BLOCK));
  }
  parts.push(Buffer.alloc(2 * BLOCK));
  return Buffer.concat(parts);
}
