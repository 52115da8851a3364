/** The eight 16-bit groups of an IPv6 address in text, '::' expanded and a trailing dotted quad as two groups. */
export function ipv6Groups(text: string): number[] {
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
