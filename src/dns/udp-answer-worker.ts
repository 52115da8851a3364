/**
 * A UDP answer worker (worker thread): one more socket on the DNS server's
 * address and port (SO_REUSEPORT, the kernel spreads clients over the
 * sockets), answering intercepted names from pre-built bytes as the main
 * thread does, with its own rate-limit accounts. Every other packet (a name
 * to forward, anything malformed) goes to the main thread as it arrived (in
 * batches, ./handover-batch.ts), and
 * the main thread answers it from its own socket on the same address and
 * port. Responses are dropped here, unanswered and uncounted, as there. What
 * the main thread has not read yet is bounded (handoverLimit bytes): beyond it
 * a packet is dropped here and counted, as the kernel drops beyond a full
 * socket buffer.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type dgram from 'node:dgram';
import { HostnameSet } from '../registry/hostname.js';
import { AnswerBuilder } from './answer-builder.js';
import { ClientNetworks } from './client-networks.js';
import { frameBytes, HandoverBatch } from './handover-batch.js';
import { EXACT, InterceptedMatcher } from './intercepted-matcher.js';
import { readQuery, REJECT } from './query-reader.js';
import { UdpReplyBatch } from './reply-batch.js';
import { ResponseRateLimiter } from './response-rate-limiter.js';
import { bindUdpSocket, UDP_RECV_BUFFER_BYTES } from './udp-socket.js';
import { ANSWERED_SLOT, COUNT_SLOTS, DROPPED_SLOT, LIMITED_SLOT, type UdpWorkerData, type UdpWorkerEvent } from './udp-workers.js';
import { NO_OPT } from './wire.js';

async function serve(data: UdpWorkerData, parent: NonNullable<typeof parentPort>): Promise<void> {
  const intercepted = new InterceptedMatcher(new HostnameSet(data.intercepted));
  const answers = new AnswerBuilder(data.advertise, data.answerTtl);
  const limiter = new ResponseRateLimiter({ perSecond: data.rateLimit, slip: data.rateLimitSlip });
  const exempt = data.rateLimit > 0 && data.rateLimitExempt.length > 0 ? new ClientNetworks(data.rateLimitExempt) : null;
  // This worker's slots, written only here; the main thread adds them to the metrics now and then.
  const counts = new Float64Array(data.counts, data.index * COUNT_SLOTS * Float64Array.BYTES_PER_ELEMENT, COUNT_SLOTS);
  const handedOver = new Int32Array(data.handedOver);
  const { index, handoverLimit } = data;
  const post = (event: UdpWorkerEvent, transfer: ArrayBuffer[] = []): void => parent.postMessage(event, transfer);

  const handovers = new HandoverBatch((frames) => post({ kind: 'queries', frames }, [frames.buffer as ArrayBuffer]));
  // A send throws once the socket is closed while the worker is being ended: nothing to answer from.
  const replies = new UdpReplyBatch(() => undefined);

  let socket: dgram.Socket;
  try {
    socket = await bindUdpSocket(data.host, data.port, true);
  } catch (err) {
    post({ kind: 'failed', message: (err as Error).message });
    return;
  }
  try {
    socket.setRecvBufferSize(UDP_RECV_BUFFER_BYTES);
  } catch {
    // The kernel's cap (net.core.rmem_max) applies; the main thread logs the same.
  }
  socket.on('error', (err) => post({ kind: 'error', message: err.message }));
  socket.on('message', (msg, rinfo) => {
    const query = readQuery(msg, 'udp');
    if (query === REJECT.RESPONSE) return;
    const match = typeof query === 'number' || query.question.hostname === null ? null : intercepted.match(query.question.hostname);
    if (typeof query === 'number' || match === null) {
      const size = frameBytes(msg, rinfo.address);
      if (Atomics.add(handedOver, index, size) + size > handoverLimit) {
        Atomics.sub(handedOver, index, size);
        counts[DROPPED_SLOT]! += 1;
        return;
      }
      handovers.add(msg, rinfo.address, rinfo.port);
      return;
    }
    const { question, opt, maxSize } = query;
    const answer = answers.build(msg, question.end, question.qtype, question.qclass, opt !== NO_OPT, maxSize);
    const reply = exempt?.includes(rinfo.address) ? answer : limiter.admit(answer, rinfo.address, match === EXACT ? undefined : match, opt !== NO_OPT ? answers.opt : undefined);
    counts[reply === answer ? ANSWERED_SLOT : LIMITED_SLOT]! += 1;
    if (!reply) return;
    replies.send(socket, reply, rinfo.port, rinfo.address);
  });
  post({ kind: 'listening' });
}

if (parentPort) await serve(workerData as UdpWorkerData, parentPort);
