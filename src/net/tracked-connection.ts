import type { Socket } from 'node:net';

/**
 * Carried as a property of the socket rather than in a WeakMap: HTTP/2 hands requests a Proxy of
 * the session's socket, which forwards property reads (symbols included) to the socket itself.
 */
const TRACKED = Symbol('layover.trackedConnection');
type Tagged = { [TRACKED]?: TrackedConnection };

/** What a connection is doing, in the order connections are shed when a cap is reached. */
export type ConnectionState = 'handshaking' | 'idle' | 'busy';

/** The connection a socket (or HTTP/2's Proxy of one) belongs to, if a listener tracks it. */
export function trackedConnection(socket: object | null | undefined): TrackedConnection | undefined {
  try {
    return socket ? (socket as Tagged)[TRACKED] : undefined;
  } catch {
    // HTTP/2's Proxy throws once its session has let go of the socket: nothing left to track.
    return undefined;
  }
}

/**
 * One client connection as its listener's caps see it: which client, whether it is still in a
 * TLS handshake, how many requests (or a tunnel) it has in flight. An HTTP/1.1 keep-alive
 * connection between requests, or one that has sent nothing yet, is idle.
 */
export class TrackedConnection {
  readonly client: string;
  #socket: Socket;
  #handshaking: boolean;
  #inFlight = 0;
  readonly #onChange: (connection: TrackedConnection) => void;

  constructor(socket: Socket, client: string, handshaking: boolean, onChange: (connection: TrackedConnection) => void) {
    this.client = client;
    this.#socket = socket;
    this.#handshaking = handshaking;
    this.#onChange = onChange;
    (socket as Tagged)[TRACKED] = this;
  }

  get state(): ConnectionState {
    if (this.#inFlight > 0) return 'busy';
    return this.#handshaking ? 'handshaking' : 'idle';
  }

  /** A request (or a CONNECT tunnel) began on this connection. */
  requestStarted(): void {
    this.#inFlight++;
    this.#onChange(this);
  }

  requestEnded(): void {
    this.#inFlight = Math.max(0, this.#inFlight - 1);
    this.#onChange(this);
  }

  /** A TLS handshake begins on an existing connection (CONNECT terminated by Layover). */
  handshakeStarted(): void {
    this.#handshaking = true;
    this.#onChange(this);
  }

  /**
   * The TLS handshake is done: from now on requests arrive on `tlsSocket`, and shedding the
   * connection destroys it (so its HTTP server sees the end) rather than the TCP socket under it.
   */
  secured(tlsSocket: Socket): void {
    (tlsSocket as Tagged)[TRACKED] = this;
    this.#socket = tlsSocket;
    this.#handshaking = false;
    this.#onChange(this);
  }

  destroy(): void {
    this.#socket.destroy();
  }
}
