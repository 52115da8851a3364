import { request } from 'node:https';

/** GET https://NAME:PORT/PATH sent to 127.0.0.1:PORT (SNI and Host = NAME), trusting only `ca`. */
export function httpsGet(port: number, name: string, path: string, ca: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, servername: name, path, ca, headers: { host: `${name}:${port}` } }, (res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}
