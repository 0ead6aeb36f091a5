import { createServer, connect, type Server, type Socket } from "node:net";
import type { AddressInfo } from "node:net";

/**
 * A TCP proxy in front of Postgres whose link can be cut (every connection reset, new ones
 * refused) and restored, to simulate a network cut without touching the shared server.
 */
export class TcpProxy {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private cutOff = false;
  private failing: RegExp | undefined;

  private constructor(
    private readonly targetHost: string,
    private readonly targetPort: number,
  ) {}

  static async start(targetUrl: string): Promise<TcpProxy> {
    const target = new URL(targetUrl);
    const proxy = new TcpProxy(target.hostname, Number(target.port || 5432));
    await proxy.listen();
    return proxy;
  }

  get port(): number {
    return (this.server?.address() as AddressInfo).port;
  }

  /** The same URL, through the proxy. */
  rewrite(url: string): string {
    const parsed = new URL(url);
    parsed.hostname = "127.0.0.1";
    parsed.port = String(this.port);
    return parsed.toString();
  }

  cut(): void {
    this.cutOff = true;
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
  }

  restore(): void {
    this.cutOff = false;
  }

  /**
   * Drops a connection the moment it sends a simple query whose text matches `pattern` (e.g. /^begin$/i:
   * a BEGIN that fails as it would on a failover); undefined stops it. Connections are not otherwise touched.
   */
  failQueries(pattern: RegExp | undefined): void {
    this.failing = pattern;
  }

  /** Whether a client→server chunk holds a simple-query message ('Q', length, text, NUL) that must fail. */
  private mustFail(chunk: Buffer): boolean {
    if (!this.failing) return false;
    const text = chunk.toString("latin1");
    for (const match of text.matchAll(/Q[\s\S]{4}([^\0]*)\0/g)) {
      if (this.failing.test(match[1] ?? "")) return true;
    }
    return false;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()));
  }

  private listen(): Promise<void> {
    this.server = createServer((client) => {
      if (this.cutOff) {
        client.destroy();
        return;
      }
      const upstream = connect(this.targetPort, this.targetHost);
      this.sockets.add(client);
      this.sockets.add(upstream);
      const drop = () => {
        client.destroy();
        upstream.destroy();
        this.sockets.delete(client);
        this.sockets.delete(upstream);
      };
      client.on("error", drop).on("close", drop);
      upstream.on("error", drop).on("close", drop);
      client.on("data", (chunk: Buffer) => {
        if (this.mustFail(chunk)) drop();
        else upstream.write(chunk);
      });
      upstream.pipe(client);
    });
    return new Promise((resolve) => this.server?.listen(0, "127.0.0.1", () => resolve()));
  }
}
