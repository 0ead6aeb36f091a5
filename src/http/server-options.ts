import type { ServerOptions } from "node:http";

export interface HttpTimeouts {
  /** HTTP_HEADERS_TIMEOUT_MS: a request's headers must have arrived within this of its first byte. */
  headersTimeoutMs: number;
  /** HTTP_REQUEST_TIMEOUT_MS: the whole request, body included. */
  requestTimeoutMs: number;
  /** HTTP_KEEP_ALIVE_TIMEOUT_MS: an idle kept-alive connection is closed after this. */
  keepAliveTimeoutMs: number;
}

/**
 * Node's HTTP server options that drop a slow client (a trickled body or header block, an idle
 * socket) with 408 or a close. Node refuses headers outlasting the request, so they are cut to it.
 * Node looks for expired requests every `connectionsCheckingInterval` (30 s by default, which would
 * let a timeout overrun by as much): here a quarter of the shorter timeout, at most a second.
 */
export function httpServerOptions(timeouts: HttpTimeouts): ServerOptions {
  const headersTimeout = Math.min(timeouts.headersTimeoutMs, timeouts.requestTimeoutMs);
  return {
    headersTimeout,
    requestTimeout: timeouts.requestTimeoutMs,
    keepAliveTimeout: timeouts.keepAliveTimeoutMs,
    connectionsCheckingInterval: Math.max(25, Math.min(1_000, Math.floor(headersTimeout / 4))),
  };
}
