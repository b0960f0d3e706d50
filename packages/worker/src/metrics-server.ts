/**
 * The HTTP endpoint of a worker replica's own metrics: `GET /metrics`
 * (Prometheus text) and `GET /healthz` (200 while the replica runs, 503
 * once it shuts down). It listens on every interface by default, since
 * Prometheus scrapes from elsewhere; it serves counts by job type only,
 * never job data.
 */
import {
  createServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';
import type { WorkerMetrics } from './metrics.js';

export interface MetricsServerOptions {
  metrics: WorkerMetrics;
  /** 0 for a free port (read it from {@link MetricsServer.port}). */
  port: number;
  /** Defaults to every interface (`::`, or `0.0.0.0` without IPv6). */
  host?: string;
  /** Whether the replica still takes jobs, for `/healthz`. */
  healthy: () => boolean;
}

export class MetricsServer {
  readonly #o: MetricsServerOptions;
  readonly #server: Server;

  constructor(options: MetricsServerOptions) {
    this.#o = options;
    this.#server = createServer((request, response) => {
      void this.#serve(request, response);
    });
  }

  /** Resolves once listening; rejects with the listen error. */
  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(this.#o.port, this.#o.host, () => {
        this.#server.off('error', reject);
        resolve();
      });
    });
  }

  /** The bound port; undefined before {@link listen} resolved. */
  get port(): number | undefined {
    const address = this.#server.address() as AddressInfo | null;
    return address?.port;
  }

  close(): Promise<void> {
    if (!this.#server.listening) return Promise.resolve();
    return new Promise((resolve) => {
      this.#server.close(() => resolve());
      // A scraper's keep-alive connection must not hold the shutdown.
      this.#server.closeAllConnections();
    });
  }

  async #serve(
    request: IncomingMessage,
    response: ServerResponse,
  ): Promise<void> {
    const path = (request.url ?? '/').split('?')[0];
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      return reply(response, 405, 'text/plain', 'method not allowed\n');
    }
    if (path === '/metrics') {
      try {
        const text = await this.#o.metrics.text();
        return reply(response, 200, this.#o.metrics.contentType, text);
      } catch (error) {
        return reply(response, 500, 'text/plain', `${String(error)}\n`);
      }
    }
    if (path === '/healthz') {
      const ok = this.#o.healthy();
      const body = JSON.stringify({ status: ok ? 'ok' : 'stopping' });
      return reply(response, ok ? 200 : 503, 'application/json', body);
    }
    return reply(response, 404, 'text/plain', 'not found\n');
  }
}

function reply(
  response: ServerResponse,
  status: number,
  contentType: string,
  body: string,
): void {
  response.writeHead(status, { 'content-type': contentType });
  response.end(body);
}
