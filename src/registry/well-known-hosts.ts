/** Layover's own name: the CA, storage-redirect downloads and (later) the token service live here. */
export const DOCKER_PROXY_HOST = 'docker.proxy';

/** Docker Hub answers under several names; all are intercepted, whatever REGISTRIES says. */
export const DOCKER_HUB_HOSTS = [
  'registry-1.docker.io',
  'auth.docker.io',
  'index.docker.io',
  'docker.io',
  'production.cloudflare.docker.com',
] as const;
