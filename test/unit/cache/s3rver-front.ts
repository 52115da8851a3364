/**
 * A fixture, not a real storage service: a small HTTP server in front of the s3rver fixture (itself the
 * stand-in for S3, none being packaged in Debian) for the two things s3rver cannot play:
 * - it lists multipart uploads (ListMultipartUploads, `GET /<bucket>?uploads`), which s3rver lacks, from
 *   the uploads it saw begin and not end through it; a test may make one look older than it is;
 * - it can hold commits (PutObject, CompleteMultipartUpload) until the test lets them go, to catch a
 *   replica between writing a blob's index row and completing its object.
 * Every other request goes to s3rver unchanged (its Host header too: s3rver checks the signature over it).
 */
import { createServer, request as forward, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { onTestFinished } from 'vitest';
import type { BlobStoreConfig } from '../../../src/config/shared-stores.js';
import type { S3Fixture } from './s3rver-fixture.js';

interface TrackedUpload {
  key: string;
  id: string;
  initiated: number;
}

export interface S3Front {
  endpoint: string;
  config(prefix?: string): Extract<BlobStoreConfig, { kind: 's3' }>;
  /** Uploads begun through this front and neither completed nor aborted (by their ids). */
  openUploads(): string[];
  /** Makes an upload look `ms` older in the listing. */
  backdate(id: string, ms: number): void;
  /** Holds every commit from now on until `release()`; `held()` counts those waiting. */
  holdCommits(): { held(): number; release(): void };
}

const HOP_BY_HOP = ['connection', 'keep-alive', 'expect', 'transfer-encoding'];

export async function startS3Front(s3: S3Fixture): Promise<S3Front> {
  const uploads = new Map<string, TrackedUpload>();
  let holding: Array<() => void> | undefined;
  const target = new URL(s3.endpoint);

  const pass = (request: IncomingMessage, response: ServerResponse, url: URL): void => {
    const headers = Object.fromEntries(Object.entries(request.headers).filter(([name]) => !HOP_BY_HOP.includes(name)));
    const upstream = forward({ host: target.hostname, port: target.port, method: request.method, path: request.url, headers }, (answer) => {
      const chunks: Buffer[] = [];
      answer.on('data', (chunk: Buffer) => chunks.push(chunk));
      answer.on('end', () => {
        const body = Buffer.concat(chunks);
        track(request.method ?? '', url, answer.statusCode ?? 500, body.toString());
        const headers = Object.fromEntries(Object.entries(answer.headers).filter(([name]) => !HOP_BY_HOP.includes(name)));
        // Whole answers go back with their length (a HEAD's is the object's, with no body).
        if (headers['content-length'] === undefined && request.method !== 'HEAD') headers['content-length'] = String(body.length);
        response.writeHead(answer.statusCode ?? 500, headers);
        response.end(body);
      });
      answer.on('error', () => response.destroy());
    });
    upstream.on('error', () => response.destroy());
    request.pipe(upstream);
  };

  const track = (method: string, url: URL, status: number, body: string): void => {
    if (status >= 300) return;
    const uploadId = url.searchParams.get('uploadId');
    if (method === 'POST' && url.searchParams.has('uploads')) {
      const id = /<UploadId>([^<]+)<\/UploadId>/.exec(body)?.[1];
      const key = decodeURIComponent(url.pathname.split('/').slice(2).join('/'));
      if (id) uploads.set(id, { key, id, initiated: Date.now() });
    } else if (uploadId !== null && (method === 'DELETE' || method === 'POST')) {
      uploads.delete(uploadId);
    }
  };

  const list = (response: ServerResponse, url: URL): void => {
    const prefix = url.searchParams.get('prefix') ?? '';
    const rows = [...uploads.values()]
      .filter((upload) => upload.key.startsWith(prefix))
      .sort((a, b) => a.key.localeCompare(b.key))
      .map((u) => `<Upload><Key>${escape(u.key)}</Key><UploadId>${u.id}</UploadId><Initiated>${new Date(u.initiated).toISOString()}</Initiated><StorageClass>STANDARD</StorageClass></Upload>`);
    response.writeHead(200, { 'content-type': 'application/xml' });
    response.end(
      `<?xml version="1.0" encoding="UTF-8"?><ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>${s3.bucket}</Bucket>` +
        `<KeyMarker></KeyMarker><UploadIdMarker></UploadIdMarker><Prefix>${escape(prefix)}</Prefix><MaxUploads>1000</MaxUploads><IsTruncated>false</IsTruncated>${rows.join('')}</ListMultipartUploadsResult>`,
    );
  };

  const server = createServer((request, response) => {
    const url = new URL(request.url ?? '/', 'http://front');
    const method = request.method ?? '';
    if (method === 'GET' && url.searchParams.has('uploads') && url.pathname.replace(/\/$/, '') === `/${s3.bucket}`) return list(response, url);
    const isCommit = (method === 'PUT' && !url.searchParams.has('uploadId')) || (method === 'POST' && url.searchParams.has('uploadId'));
    if (isCommit && holding) return void holding.push(() => pass(request, response, url));
    pass(request, response, url);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  onTestFinished(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
  const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    endpoint,
    config: (prefix = 'cache') => ({ ...s3.config(prefix), endpoint }),
    openUploads: () => [...uploads.keys()],
    backdate: (id, ms) => {
      const upload = uploads.get(id);
      if (upload) upload.initiated -= ms;
    },
    holdCommits: () => {
      const waiting: Array<() => void> = [];
      holding = waiting;
      return {
        held: () => waiting.length,
        release: () => {
          if (holding === waiting) holding = undefined;
          for (const go of waiting.splice(0)) go();
        },
      };
    },
  };
}

function escape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}
