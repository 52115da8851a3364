/**
 * Debian's headless Chromium (/usr/bin/chromium) driven over the DevTools protocol, without any npm
 * package: `--remote-debugging-pipe` carries the protocol's JSON messages (NUL-terminated) over the
 * child's file descriptors 3 (commands in) and 4 (answers and events out). A pipe rather than the
 * DevTools WebSocket so that the browser can run inside a test's network namespace, where it reaches
 * only that namespace's loopback, while the test drives it from outside; nothing listens for it.
 *
 *   const browser = await launchChromium({ netns: bench.sandbox.name });
 *   onTestFinished(() => browser.close());
 *   const page = await browser.newPage();
 *   await page.navigate('http://127.0.0.1/');
 *   const text = await page.waitFor<string>(`document.querySelector('h1')?.textContent`);
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { Readable, Writable } from 'node:stream';

export const CHROMIUM = process.env.LAYOVER_TEST_CHROMIUM ?? '/usr/bin/chromium';

export interface ChromiumOptions {
  /** Run inside this network namespace (`ip netns exec`), e.g. a test sandbox's. */
  netns?: string;
  /** Chromium's --host-resolver-rules; by default nothing resolves but 127.0.0.1 and localhost, so nothing else is reachable. */
  hostResolverRules?: string;
  /** Viewport of new pages; default 1280×1600. */
  width?: number;
  height?: number;
}

export interface LogEntry {
  source: string;
  level: string;
  text: string;
}

export interface Page {
  /** Navigates and waits for the load event. */
  navigate(url: string, timeoutMs?: number): Promise<void>;
  /** The value of a JavaScript expression in the page (awaited if a promise); throws what the page threw. */
  evaluate<T>(expression: string): Promise<T>;
  /** Evaluates `expression` until it is truthy (every 100 ms, up to `timeoutMs`, default 20 s) and returns it. */
  waitFor<T>(expression: string, timeoutMs?: number): Promise<T>;
  /** A PNG of the whole page written to `file`. */
  screenshot(file: string): Promise<void>;
  /** What the browser logged for this page so far (CSP refusals among them). */
  readonly logs: LogEntry[];
}

export interface Chromium {
  newPage(): Promise<Page>;
  /** Closes the browser (SIGKILL if it does not exit within 5 s) and removes its profile. */
  close(): Promise<void>;
}

interface Message {
  id?: number;
  method?: string;
  params?: Record<string, unknown>;
  result?: Record<string, unknown>;
  error?: { message: string };
  sessionId?: string;
}

const COMMAND_TIMEOUT_MS = 30_000;

export async function launchChromium(options: ChromiumOptions = {}): Promise<Chromium> {
  const profile = mkdtempSync(join(tmpdir(), 'layover-chromium-'));
  const args = [
    '--headless',
    // Root in a container: Chromium's own sandbox needs user namespaces it may not get.
    '--no-sandbox',
    '--disable-gpu',
    '--remote-debugging-pipe',
    `--user-data-dir=${profile}`,
    '--no-first-run',
    '--no-default-browser-check',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--disable-extensions',
    '--disable-default-apps',
    '--disable-domain-reliability',
    '--mute-audio',
    '--hide-scrollbars',
    `--host-resolver-rules=${options.hostResolverRules ?? 'MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost'}`,
    'about:blank',
  ];
  const [command, commandArgs] = options.netns ? ['ip', ['netns', 'exec', options.netns, CHROMIUM, ...args]] : [CHROMIUM, args];
  const child = spawn(command, commandArgs, {
    stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'],
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: profile },
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-20_000)));
  const input = child.stdio[3] as Writable;
  const output = child.stdio[4] as Readable;
  input.on('error', () => undefined);

  let nextId = 1;
  const pending = new Map<number, { resolve: (result: Record<string, unknown>) => void; reject: (error: Error) => void }>();
  const listeners = new Set<(message: Message) => void>();
  let buffered = '';
  output.on('data', (chunk: Buffer) => {
    const parts = (buffered + chunk.toString('utf8')).split('\0');
    buffered = parts.pop() ?? '';
    for (const part of parts) {
      const message = JSON.parse(part) as Message;
      if (message.id !== undefined) {
        const waiter = pending.get(message.id);
        pending.delete(message.id);
        if (message.error) waiter?.reject(new Error(`chromium: ${message.error.message}`));
        else waiter?.resolve(message.result ?? {});
      } else {
        for (const listener of listeners) listener(message);
      }
    }
  });
  const exited = once(child, 'exit');
  void exited.then(() => {
    for (const waiter of pending.values()) waiter.reject(new Error(`chromium exited:\n${stderr}`));
    pending.clear();
  });

  const send = (method: string, params: Record<string, unknown> = {}, sessionId?: string): Promise<Record<string, unknown>> =>
    new Promise((resolve, reject) => {
      const id = nextId++;
      const timer = setTimeout(() => {
        pending.delete(id);
        reject(new Error(`chromium: no answer to ${method} within ${COMMAND_TIMEOUT_MS} ms\n${stderr}`));
      }, COMMAND_TIMEOUT_MS);
      const settle = <T>(fn: (value: T) => void) => (value: T) => {
        clearTimeout(timer);
        fn(value);
      };
      pending.set(id, { resolve: settle(resolve), reject: settle(reject) });
      input.write(`${JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) })}\0`);
    });

  const close = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      await send('Browser.close').catch(() => undefined);
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(profile, { recursive: true, force: true });
  };

  try {
    await send('Browser.getVersion');
  } catch (error) {
    child.kill('SIGKILL');
    await close();
    throw error;
  }

  const newPage = async (): Promise<Page> => {
    const { targetId } = (await send('Target.createTarget', { url: 'about:blank' })) as { targetId: string };
    const { sessionId } = (await send('Target.attachToTarget', { targetId, flatten: true })) as { sessionId: string };
    const command = (method: string, params?: Record<string, unknown>) => send(method, params, sessionId);
    const logs: LogEntry[] = [];
    listeners.add((message) => {
      if (message.sessionId !== sessionId || message.method !== 'Log.entryAdded') return;
      const entry = message.params?.entry as LogEntry;
      logs.push({ source: entry.source, level: entry.level, text: entry.text });
    });
    await Promise.all([command('Page.enable'), command('Runtime.enable'), command('Log.enable')]);
    await command('Emulation.setDeviceMetricsOverride', { width: options.width ?? 1280, height: options.height ?? 1600, deviceScaleFactor: 1, mobile: false });

    const evaluate = async <T>(expression: string): Promise<T> => {
      const answer = (await command('Runtime.evaluate', { expression, returnByValue: true, awaitPromise: true })) as {
        result: { value?: T };
        exceptionDetails?: { text: string; exception?: { description?: string } };
      };
      if (answer.exceptionDetails) throw new Error(`in the page: ${answer.exceptionDetails.exception?.description ?? answer.exceptionDetails.text}`);
      return answer.result.value as T;
    };

    return {
      logs,
      async navigate(url, timeoutMs = 20_000) {
        let onEvent: (message: Message) => void = () => undefined;
        const loaded = new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`chromium: ${url} did not load within ${timeoutMs} ms`)), timeoutMs);
          onEvent = (message) => {
            if (message.sessionId === sessionId && message.method === 'Page.loadEventFired') {
              clearTimeout(timer);
              resolve();
            }
          };
          listeners.add(onEvent);
        });
        try {
          const result = (await command('Page.navigate', { url })) as { errorText?: string };
          if (result.errorText) throw new Error(`chromium: ${url}: ${result.errorText}`);
          await loaded;
        } finally {
          listeners.delete(onEvent);
        }
      },
      evaluate,
      async waitFor<T>(expression: string, timeoutMs = 20_000): Promise<T> {
        const deadline = Date.now() + timeoutMs;
        for (;;) {
          const value = await evaluate<T>(expression);
          if (value) return value;
          if (Date.now() > deadline) throw new Error(`chromium: \`${expression}\` still falsy after ${timeoutMs} ms`);
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      },
      async screenshot(file) {
        const { data } = (await command('Page.captureScreenshot', { format: 'png', captureBeyondViewport: true })) as { data: string };
        mkdirSync(dirname(file), { recursive: true });
        writeFileSync(file, Buffer.from(data, 'base64'));
      },
    };
  };

  return { newPage, close };
}
