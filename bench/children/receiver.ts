/**
 * The benchmark's webhook receiver, run as its own process so it never shares an event loop with
 * what is measured. Keep-alive HTTP on 127.0.0.1 that answers 200 as soon as the body is read.
 * Over IPC: "track" starts noting each request's arrival time per webhook-id; "report" sends the
 * count and the noted arrivals back and clears them. Exits when its parent goes away.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";

export type ReceiverCommand = { type: "track"; on: boolean } | { type: "report" } | { type: "stop" };
export type ReceiverMessage =
  | { type: "ready"; port: number }
  | { type: "report"; count: number; arrivals: Array<[string, number]> };

let count = 0;
let tracking = false;
let arrivals: Array<[string, number]> = [];

const server = createServer((req, res) => {
  // Arrival is when the request's head is parsed: the moment the receiver could act on it.
  if (tracking) arrivals.push([String(req.headers["webhook-id"]), performance.timeOrigin + performance.now()]);
  req.resume();
  req.on("end", () => {
    count++;
    res.writeHead(200, { "content-type": "text/plain", "content-length": "2" }).end("ok");
  });
});
server.keepAliveTimeout = 120_000;
server.headersTimeout = 130_000;
server.requestTimeout = 0;
server.maxRequestsPerSocket = 0;

const send = (message: ReceiverMessage) => process.send?.(message);

process.on("message", (command: ReceiverCommand) => {
  if (command.type === "track") tracking = command.on;
  else if (command.type === "report") {
    send({ type: "report", count, arrivals });
    count = 0;
    arrivals = [];
  } else if (command.type === "stop") {
    server.closeAllConnections();
    server.close(() => process.exit(0));
  }
});
process.on("disconnect", () => process.exit(0));

server.listen(0, "127.0.0.1", () => send({ type: "ready", port: (server.address() as AddressInfo).port }));
