/** Where the process is in its life, as /readyz reports it. */
export type ServingPhase = 'starting' | 'ready' | 'stopping';

/**
 * Readiness as load balancers and kube-proxy see it: ready once every listener is up (the cache is
 * opened before any of them), not ready from the moment a stop begins. Liveness is not kept here:
 * a process whose event loop answers /livez is alive, stopping or not.
 *
 * While stopping, every HTTP/1.1 response carries `Connection: close` (src/app.ts): a client whose
 * keep-alive connection still reaches this replica gets its answer, then opens its next connection
 * through the load balancer to a replica that stays.
 */
export class ServingState {
  #phase: ServingPhase = 'starting';

  get phase(): ServingPhase {
    return this.#phase;
  }

  get ready(): boolean {
    return this.#phase === 'ready';
  }

  get stopping(): boolean {
    return this.#phase === 'stopping';
  }

  /** Every listener is up. A stop that began during the start stays a stop. */
  listening(): void {
    if (this.#phase === 'starting') this.#phase = 'ready';
  }

  stop(): void {
    this.#phase = 'stopping';
  }
}
