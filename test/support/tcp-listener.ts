import { createServer, type Server, type Socket } from "node:net";
import type { AddressInfo } from "node:net";

/**
 * A bare TCP listener on 127.0.0.1 that counts connections and drops them. It stands in for an
 * internal service an attacker would like the sender to reach: any connection at all, TLS or not,
 * is counted, so "no connection was opened" can be asserted.
 */
export class TcpListener {
  connections = 0;
  private readonly sockets = new Set<Socket>();
  private constructor(private readonly server: Server) {}

  static async start(): Promise<TcpListener> {
    const server = createServer();
    const listener = new TcpListener(server);
    server.on("connection", (socket) => {
      listener.connections++;
      listener.sockets.add(socket);
      socket.on("error", () => undefined);
      socket.destroy();
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
    return listener;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
