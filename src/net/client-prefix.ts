/** The client's /24 (IPv4) or /56 (IPv6): what one site, or one spoofer's choice of victim, looks like. */
export function clientPrefix(address: string): string {
  const v4 = address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
  if (!v4.includes(':')) return v4.slice(0, v4.lastIndexOf('.'));
  const groups = ipv6Groups(address.split('%')[0]!.toLowerCase());
  return `${groups[0]!.toString(16)}:${groups[1]!.toString(16)}:${groups[2]!.toString(16)}:${(groups[3]! >> 8).toString(16)}/56`;
}

/** The eight 16-bit groups of an IPv6 address in text, '::' expanded and a trailing dotted quad as two groups. */
function ipv6Groups(text: string): number[] {
  const parts = (s: string | undefined): number[] =>
    !s
      ? []
      : s.split(':').flatMap((part) => {
          if (!part.includes('.')) return [parseInt(part, 16) || 0];
          const [a = 0, b = 0, c = 0, d = 0] = part.split('.').map(Number);
          return [(a << 8) | b, (c << 8) | d];
        });
  const [head, tail] = text.split('::');
  const left = parts(head);
  const right = parts(tail);
  const zeros = Array<number>(Math.max(0, 8 - left.length - right.length)).fill(0);
  return [...left, ...zeros, ...right, 0, 0, 0, 0];
}
