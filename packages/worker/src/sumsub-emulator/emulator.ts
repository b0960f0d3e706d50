/**
 * A local stand-in for Sumsub's API, on node:http, for the tests and the
 * dev stack: it keeps applicants and their reviews in memory, answers
 * `GET /resources/applicants/{id}/status`, checks every request's signing
 * as Sumsub does, and injects the faults a test asks for.
 */
import {
  createServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';
import { ApplicantStore, hexId, type ReviewInput } from './applicant-store.js';
import { FaultPlan, malformedBody, type Fault } from './fault-plan.js';
import { checkRequest, type ErrorAnswer } from './request-auth.js';

const STATUS_PATH = /^\/resources\/applicants\/([^/?]+)\/status(?:\?.*)?$/;

export interface SumsubEmulatorOptions {
  /** The app token requests must carry. */
  appToken: string;
  /** The secret key requests must be signed with. */
  secretKey: string;
  /** The emulator's clock, for the timestamp window. Defaults to `Date.now`. */
  nowMs?: () => number;
}

/** A started emulator. */
export interface RunningEmulator {
  /** `http://127.0.0.1:<port>`: the `SUMSUB_BASE_URL` of the client. */
  url: string;
  close(): Promise<void>;
}

export class SumsubEmulator {
  readonly #applicants = new ApplicantStore();
  readonly #faults = new FaultPlan();
  readonly #requests = new Map<string, number>();
  readonly #options: Required<SumsubEmulatorOptions>;
  #latencyMs = 0;

  constructor(options: SumsubEmulatorOptions) {
    this.#options = { nowMs: Date.now, ...options };
  }

  /** Adds an applicant in review status `init`; returns its id. */
  addApplicant(id?: string): string {
    return this.#applicants.add(id);
  }

  /** Sets an applicant's review (adding it if unknown), like `testCompleted`. */
  setReview(applicantId: string, review: ReviewInput): void {
    this.#applicants.setReview(applicantId, review);
  }

  /** The next `count` requests answer `status` (429, 500, …). */
  failNext(
    count: number,
    status: number,
    options: { retryAfter?: string } = {},
  ): void {
    this.#faults.add(count, { kind: 'status', status, ...options });
  }

  /** The next `count` status answers are malformed. */
  malformNext(count: number, body: 'not-json' | 'wrong-type'): void {
    this.#faults.add(count, { kind: 'malformed', body });
  }

  /** Every answer waits this long first (0, the default: none). */
  setLatency(ms: number): void {
    this.#latencyMs = ms;
  }

  /** Requests received for an applicant's status, faulted ones included. */
  requestCount(applicantId: string): number {
    return this.#requests.get(applicantId) ?? 0;
  }

  /** Listens on 127.0.0.1 (`port` 0: any free port). */
  async start(port = 0): Promise<RunningEmulator> {
    const server = createServer((request, response) => {
      void this.#handle(request, response);
    });
    await listen(server, port);
    const { port: bound } = server.address() as AddressInfo;
    return {
      url: `http://127.0.0.1:${bound}`,
      close: () => close(server),
    };
  }

  async #handle(request: IncomingMessage, response: ServerResponse) {
    const body = await readBody(request);
    if (this.#latencyMs > 0) await delay(this.#latencyMs);
    const match = STATUS_PATH.exec(request.url ?? '');
    const applicantId = match ? decodeURIComponent(match[1]!) : undefined;
    if (applicantId) {
      this.#requests.set(applicantId, this.requestCount(applicantId) + 1);
    }

    const refused = checkRequest(
      this.#options,
      {
        method: request.method ?? 'GET',
        url: request.url ?? '/',
        headers: request.headers,
      },
      body,
      this.#options.nowMs(),
    );
    if (refused) return sendError(response, refused);

    if (!applicantId || request.method !== 'GET') {
      return sendError(response, notFound('Resource not found'));
    }
    const fault = this.#faults.take();
    if (fault?.kind === 'status') return sendFault(response, fault);
    this.#answerStatus(response, applicantId, fault);
  }

  #answerStatus(
    response: ServerResponse,
    applicantId: string,
    fault: Fault | undefined,
  ): void {
    const status = this.#applicants.statusBody(applicantId);
    if (!status) {
      return sendError(
        response,
        notFound(`Applicant with id '${applicantId}' not found`),
      );
    }
    const text =
      fault?.kind === 'malformed'
        ? malformedBody(fault, status)
        : JSON.stringify(status);
    send(response, 200, text);
  }
}

function notFound(description: string): ErrorAnswer {
  return { status: 404, body: { description, code: 404 } };
}

function sendFault(
  response: ServerResponse,
  fault: Extract<Fault, { kind: 'status' }>,
): void {
  if (fault.retryAfter !== undefined) {
    response.setHeader('Retry-After', fault.retryAfter);
  }
  const description =
    fault.status === 429 ? 'Too many requests' : 'Internal server error';
  sendError(response, {
    status: fault.status,
    body: { description, code: fault.status },
  });
}

/** Sumsub's error body (in Sumsub's key order), with a fresh correlationId. */
function sendError(response: ServerResponse, answer: ErrorAnswer): void {
  const { description, code, ...rest } = answer.body;
  const correlationId = `req-${hexId(16)}`;
  const body = { description, code, correlationId, ...rest };
  send(response, answer.status, JSON.stringify(body));
}

function send(response: ServerResponse, status: number, text: string): void {
  response.writeHead(status, {
    'content-type': 'application/json;charset=UTF-8',
    'content-length': Buffer.byteLength(text),
  });
  response.end(text);
}

async function readBody(request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function listen(server: Server, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
}

function close(server: Server): Promise<void> {
  return new Promise((resolve, reject) => {
    server.closeAllConnections();
    server.close((error) => (error ? reject(error) : resolve()));
  });
}
