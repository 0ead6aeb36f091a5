/**
 * The benchmark's webhook receiver, run as its own process so it never shares an event loop with
 * what is measured. Keep-alive HTTP on 127.0.0.1 that answers 200 as soon as the body is read.
 * Over IPC: "track" starts noting each request's arrival time per webhook-id; "report" sends the
 * count and the noted arrivals back and clears them. Exits when its parent goes away.
 *
 * RECEIVER_HOSTS (comma list of loopback addresses) makes it answer on those addresses too, on the
 * same port: one receiver, many destinations. A request to an address in RECEIVER_HANG is never
 * answered (a destination that hangs); the report says, per address, the most requests it held
 * open at once.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export type ReceiverCommand = { type: "track"; on: boolean } | { type: "report" } | { type: "stop" };
export type ReceiverMessage =
  | { type: "ready"; port: number }
  | { type: "report"; count: number; arrivals: Array<[string, number]>; maxOpen: Record<string, number> };

const list = (name: string) => (process.env[name] ?? "").split(",").map((entry) => entry.trim()).filter(Boolean);
const extraHosts = list("RECEIVER_HOSTS");
const hanging = new Set(list("RECEIVER_HANG"));

let count = 0;
let tracking = false;
let arrivals: Array<[string, number]> = [];
const open = new Map<string, number>();
let maxOpen: Record<string, number> = {};

const handler = (req: IncomingMessage, res: ServerResponse) => {
  // Arrival is when the request's head is parsed: the moment the receiver could act on it.
  if (tracking) arrivals.push([String(req.headers["webhook-id"]), performance.timeOrigin + performance.now()]);
  const address = (req.socket.localAddress ?? "").replace(/^::ffff:/, "");
  const held = (open.get(address) ?? 0) + 1;
  open.set(address, held);
  maxOpen[address] = Math.max(maxOpen[address] ?? 0, held);
  res.once("close", () => open.set(address, (open.get(address) ?? 1) - 1));
  req.resume();
  req.on("end", () => {
    if (hanging.has(address)) return;
    count++;
    res.writeHead(200, { "content-type": "text/plain", "content-length": "2" }).end("ok");
  });
};

function newServer(): Server {
  const server = createServer(handler);
  server.keepAliveTimeout = 120_000;
  server.headersTimeout = 130_000;
  server.requestTimeout = 0;
  server.maxRequestsPerSocket = 0;
  return server;
}

const server = newServer();
const servers = [server];

const send = (message: ReceiverMessage) => process.send?.(message);

process.on("message", (command: ReceiverCommand) => {
  if (command.type === "track") tracking = command.on;
  else if (command.type === "report") {
    send({ type: "report", count, arrivals, maxOpen });
    count = 0;
    arrivals = [];
    maxOpen = {};
  } else if (command.type === "stop") {
    for (const each of servers) each.closeAllConnections();
    server.close(() => process.exit(0));
  }
});
process.on("disconnect", () => process.exit(0));

server.listen(0, "127.0.0.1", () => {
  const port = (server.address() as AddressInfo).port;
  void Promise.all(
    extraHosts.map(
      (host) =>
        new Promise<void>((resolve, reject) => {
          const extra = newServer();
          servers.push(extra);
          extra.once("error", reject);
          extra.listen(port, host, () => resolve());
        }),
    ),
  ).then(
    () => send({ type: "ready", port }),
    (error: unknown) => {
      console.error(`receiver: cannot listen on every RECEIVER_HOSTS address: ${String(error)}`);
      process.exit(1);
    },
  );
});
