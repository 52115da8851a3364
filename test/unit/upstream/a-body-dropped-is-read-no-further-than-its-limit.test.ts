/**
 * An upstream body Layover drops (a redirect's, a refusal's, an error answered otherwise) is read to
 * its end when short, so its connection serves the next request, and destroyed past a limit: drained
 * whole, an endless body went on downloading in the background for as long as the upstream sent it.
 */
import { PassThrough, Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { discardBody } from '../../../src/upstream/read-limited.js';

describe('discardBody', () => {
  it('destroys an endless body once it is past the limit, having read little more', async () => {
    let sent = 0;
    const endless = new Readable({
      read() {
        sent += 1024;
        this.push(Buffer.alloc(1024));
      },
    });
    discardBody(endless, 8 * 1024);
    await new Promise((resolve) => endless.once('close', resolve));
    expect(endless.destroyed).toBe(true);
    expect(sent).toBeLessThan(64 * 1024);
  });

  it('reads a short body to its end', async () => {
    const short = new PassThrough();
    discardBody(short, 8 * 1024);
    short.end(Buffer.alloc(4 * 1024));
    await new Promise((resolve) => short.once('end', resolve));
    expect(short.readableEnded).toBe(true);
  });
});
