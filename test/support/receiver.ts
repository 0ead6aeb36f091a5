import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface ReceivedRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
}

export type Responder = (request: ReceivedRequest, response: ServerResponse) => void;

export const ok: Responder = (_request, response) => {
  response.writeHead(200, { "content-type": "application/json" }).end('{"ok":true}');
};

export const status =
  (code: number, headers: Record<string, string> = {}, body = ""): Responder =>
  (_request, response) => {
    response.writeHead(code, headers).end(body);
  };

/** Never answers: the sender's timeout has to end the attempt. */
export const hang: Responder = () => undefined;

/**
 * A real HTTP receiver on 127.0.0.1. Responders are used in order, the last one repeating;
 * every request is recorded with its raw body.
 */
export class Receiver {
  readonly requests: ReceivedRequest[] = [];
  private responders: Responder[] = [ok];
  private server: Server | undefined;
  private readonly hanging = new Set<ServerResponse>();
  private waiters: Array<() => void> = [];

  static async start(...responders: Responder[]): Promise<Receiver> {
    const receiver = new Receiver();
    if (responders.length > 0) receiver.respondWith(...responders);
    await receiver.listen();
    return receiver;
  }

  respondWith(...responders: Responder[]): void {
    this.responders = responders;
  }

  get url(): string {
    const address = this.server?.address() as AddressInfo;
    return `http://127.0.0.1:${address.port}/webhook`;
  }

  /** Resolves once `count` requests have arrived. */
  async waitForRequests(count: number, timeoutMs = 20_000): Promise<ReceivedRequest[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.requests.length < count) {
      if (Date.now() > deadline) throw new Error(`expected ${count} requests, got ${this.requests.length}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 200);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return this.requests.slice(0, count);
  }

  private listen(): Promise<void> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (chunk: Buffer) => chunks.push(chunk));
      req.on("end", () => {
        const request: ReceivedRequest = {
          method: req.method ?? "",
          path: req.url ?? "",
          headers: req.headers,
          body: Buffer.concat(chunks).toString("utf8"),
        };
        const index = this.requests.push(request) - 1;
        const responder = this.responders[Math.min(index, this.responders.length - 1)] ?? ok;
        this.hanging.add(res);
        res.on("close", () => this.hanging.delete(res));
        responder(request, res);
        for (const wake of this.waiters.splice(0)) wake();
      });
    });
    this.server.keepAliveTimeout = 60_000;
    return new Promise((resolve) => this.server?.listen(0, "127.0.0.1", () => resolve()));
  }

  async close(): Promise<void> {
    for (const res of this.hanging) res.destroy();
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()));
  }
}
