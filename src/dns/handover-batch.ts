/**
 * Packets a UDP answer worker hands to the main thread, framed into one buffer
 * per turn of the worker's event loop: one postMessage per datagram cost more
 * than answering it, and under load a turn reads many datagrams. A frame is
 * the client's port (u16), its address (u8 length, latin1) and the packet
 * (u16 length, bytes) exactly as it arrived.
 */
export class HandoverBatch {
  readonly #send: (frames: Uint8Array) => void;
  readonly #buffer = Buffer.allocUnsafe(CAPACITY);
  #used = 0;
  #scheduled = false;
  readonly #flushLater = (): void => {
    this.#scheduled = false;
    this.flush();
  };

  /** `send` gets a buffer of its own, which it may transfer. */
  constructor(send: (frames: Uint8Array) => void) {
    this.#send = send;
  }

  add(packet: Buffer, address: string, port: number): void {
    const size = frameBytes(packet, address);
    if (this.#used + size > CAPACITY) this.flush();
    let at = this.#buffer.writeUInt16BE(port, this.#used);
    at = this.#buffer.writeUInt8(address.length, at);
    at += this.#buffer.write(address, at, 'latin1');
    at = this.#buffer.writeUInt16BE(packet.length, at);
    this.#used = at + packet.copy(this.#buffer, at);
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(this.#flushLater);
    }
  }

  flush(): void {
    if (this.#used === 0) return;
    const frames = new Uint8Array(this.#used);
    frames.set(this.#buffer.subarray(0, this.#used));
    this.#used = 0;
    this.#send(frames);
  }
}

/** The bytes `packet` from `address` takes in a batch: what the receiver's count of bytes in flight goes by. */
export function frameBytes(packet: Buffer, address: string): number {
  return FIXED_FRAME_BYTES + address.length + packet.length;
}

/** Calls `each` for every packet in a batch HandoverBatch sent, in the order they arrived. */
export function readHandovers(frames: Uint8Array, each: (packet: Buffer, address: string, port: number) => void): void {
  const buffer = Buffer.from(frames.buffer, frames.byteOffset, frames.byteLength);
  let at = 0;
  while (at < buffer.length) {
    const port = buffer.readUInt16BE(at);
    const addressLength = buffer.readUInt8(at + 2);
    const address = buffer.toString('latin1', at + 3, at + 3 + addressLength);
    at += 3 + addressLength;
    const packetLength = buffer.readUInt16BE(at);
    at += 2;
    each(buffer.subarray(at, at + packetLength), address, port);
    at += packetLength;
  }
}

const FIXED_FRAME_BYTES = 2 + 1 + 2;
/** Room for the largest UDP datagram and its frame, so that any packet fits a fresh batch. */
const CAPACITY = 0xffff + FIXED_FRAME_BYTES + 0xff;
