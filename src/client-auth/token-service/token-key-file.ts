/** The token service's key file in the data dir, by default: a name of its own, so that reading the config loads no JOSE library. */
export const TOKEN_KEY_FILE = 'client-token-key.pem';
