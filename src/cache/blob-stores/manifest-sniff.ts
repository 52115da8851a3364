/**
 * The media type of a manifest or index, so a blob re-indexed without its row is served with the right
 * Content-Type. Only documents that name their own media type and schema version qualify; configs and
 * layers do not.
 */
export function manifestMediaType(bytes: Buffer): string | null {
  if (bytes[0] !== 0x7b) return null; // '{'
  try {
    const document: unknown = JSON.parse(bytes.toString('utf8'));
    if (typeof document !== 'object' || document === null) return null;
    const { mediaType, schemaVersion } = document as { mediaType?: unknown; schemaVersion?: unknown };
    return typeof mediaType === 'string' && typeof schemaVersion === 'number' ? mediaType : null;
  } catch {
    return null;
  }
}
