/** Whether `buffer` is the whole of an ArrayBuffer of its own: not a slice of another, of Node's shared pool, or of shared memory. */
export function ownsItsMemory(buffer: Buffer): boolean {
  return buffer.buffer instanceof ArrayBuffer && buffer.byteOffset === 0 && buffer.byteLength === buffer.buffer.byteLength;
}

/**
 * Frees the memory of a buffer nothing reads any more now, by detaching it (it reads as empty from then
 * on), instead of when a collection finds it dead: a buffer's memory is outside V8's heap, so a dead one
 * waits for a collection its own size did not start. Buffers that do not own their memory are left as
 * they are.
 */
export function freeNow(buffer: Buffer): void {
  const memory = buffer.buffer;
  if (ownsItsMemory(buffer) && memory instanceof ArrayBuffer) freeMemory(memory);
}

/** Like freeNow, for memory held as an ArrayBuffer (one handed back by a worker): every view of it reads as empty. */
export function freeMemory(memory: ArrayBuffer): void {
  if (!memory.detached) memory.transfer(0);
}
