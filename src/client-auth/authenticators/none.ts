import type { Authenticator, ClientIdentity } from '../authenticator.js';

const ANONYMOUS: ClientIdentity = Object.freeze({ user: 'anonymous', groups: Object.freeze([]) });

/** `CLIENT_AUTH=none`: every client is let in, as with the nginx-based proxies. */
export class NoAuthenticator implements Authenticator {
  authenticate(_authorization: string | undefined): Promise<ClientIdentity> {
    return Promise.resolve(ANONYMOUS);
  }

  stillValid(_user: string): Promise<boolean> {
    return Promise.resolve(true);
  }
}
