import type { Socket } from "node:net";
import { Agent, buildConnector } from "undici";
import type { ErrorKind } from "../db/schema.js";
import { parseRetryAfter, type AttemptResult } from "./outcome.js";
import { pinnedLookup } from "./pinned-lookup.js";
import { postOnce, postTargetOf, type PostTarget } from "./post-once.js";
import { UrlRejectedError, type UrlPolicy } from "./url-policy.js";

export interface OutgoingRequest {
  url: string;
  body: string;
  headers: Record<string, string>;
  timeoutMs: number;
  connectTimeoutMs: number;
  /** Aborts the attempt from outside (worker shutdown). */
  signal?: AbortSignal | undefined;
}

export const RESPONSE_READ_CAP_BYTES = 64 * 1024;
export const RESPONSE_EXCERPT_BYTES = 1024;
/**
 * Bytes of response header names and values read at most (undici's `maxHeaderSize`); past them
 * the attempt fails. Every field costs at least a byte, so it also bounds how many fields are parsed
 * before the count cap below can refuse them: 10,000 fields are never parsed.
 */
export const MAX_RESPONSE_HEADER_BYTES = 8 * 1024;
/** Response header fields accepted at most; a receiver's answer has a few dozen. */
export const MAX_RESPONSE_HEADER_COUNT = 256;
/**
 * Bytes handed to undici's parser per socket read. Past the header cap undici destroys the socket
 * but parses the rest of the bytes it was handed, building an error per header: at 10,000 headers
 * in one read that cost ~65 ms of the main thread per response. Short reads stop it within this.
 */
export const PARSER_READ_BYTES = 1024;
export const USER_AGENT = "webhook-outbox/0.1";

/**
 * Sends one attempt. Keeps one keep-alive agent per connect timeout, never follows redirects,
 * reads at most 64 KiB of the answer and keeps a 1 KiB excerpt. Never throws: every failure
 * becomes an AttemptResult with an error kind.
 *
 * Address policy at send time: `parse` re-checks the URL's form and an IP-literal host (no lookup
 * happens for those); a host name is resolved and vetted inside the agents' `connect.lookup`
 * hook, so the socket opens to exactly the addresses that were vetted.
 */
export class HttpSender {
  private readonly agents = new Map<number, Agent>();
  private readonly targets = new Map<string, PostTarget | UrlRejectedError>();
  private readonly lookup: ReturnType<typeof pinnedLookup>;

  constructor(private readonly urlPolicy: UrlPolicy) {
    this.lookup = pinnedLookup(urlPolicy);
  }

  async send(outgoing: OutgoingRequest): Promise<AttemptResult> {
    const startedAt = new Date();
    const started = performance.now();
    // Built field by field: object spread costs microseconds per call on this hot path.
    const finish = (partial: Omit<AttemptResult, "startedAt" | "finishedAt" | "durationMs">): AttemptResult => ({
      startedAt,
      finishedAt: new Date(),
      durationMs: Math.round(performance.now() - started),
      responseStatus: partial.responseStatus,
      responseBodyExcerpt: partial.responseBodyExcerpt,
      retryAfterMs: partial.retryAfterMs,
      error: partial.error,
    });

    const target = this.targetOf(outgoing.url);
    if (target instanceof UrlRejectedError) return finish(blocked(target));

    const outcome = await postOnce(this.agentFor(outgoing.connectTimeoutMs), {
      target,
      headers: Object.assign({ "content-type": "application/json", "user-agent": USER_AGENT }, outgoing.headers),
      body: outgoing.body,
      timeoutMs: outgoing.timeoutMs,
      readCapBytes: RESPONSE_READ_CAP_BYTES,
      maxHeaderCount: MAX_RESPONSE_HEADER_COUNT,
      signal: outgoing.signal,
    });
    switch (outcome.kind) {
      case "answered": {
        const retryAfter = outcome.headers["retry-after"];
        return finish({
          responseStatus: outcome.status,
          responseBodyExcerpt: truncateUtf8(outcome.body, RESPONSE_EXCERPT_BYTES),
          retryAfterMs: parseRetryAfter(Array.isArray(retryAfter) ? retryAfter[0] : retryAfter, Date.now()),
          error: null,
        });
      }
      case "headers-over-cap": {
        // Retried like any bad answer: the receiver may be fixed by the next attempt.
        const message =
          outcome.over === "bytes"
            ? `response headers larger than ${MAX_RESPONSE_HEADER_BYTES} bytes`
            : `more than ${MAX_RESPONSE_HEADER_COUNT} response header fields`;
        return finish({ responseStatus: null, responseBodyExcerpt: null, error: { kind: "other", message } });
      }
      case "aborted":
        return finish({ responseStatus: null, responseBodyExcerpt: null, error: { kind: "other", message: "aborted" } });
      case "timed-out": {
        const message = `no complete response within ${outgoing.timeoutMs} ms`;
        return finish({ responseStatus: null, responseBodyExcerpt: null, error: { kind: "timeout", message } });
      }
      case "failed": {
        const rejection = rejectionIn(outcome.error);
        if (rejection) return finish(blocked(rejection));
        const error = { kind: errorKind(outcome.error), message: describe(outcome.error) };
        return finish({ responseStatus: null, responseBodyExcerpt: null, error });
      }
    }
  }

  async close(): Promise<void> {
    await Promise.all([...this.agents.values()].map((agent) => agent.close()));
    this.agents.clear();
  }

  /**
   * The URL's form and IP-literal check, which depend on the URL alone, and where it points:
   * remembered per URL, since a delivery is attempted many times and a tenant sends to few URLs.
   * (Names are vetted per connection.)
   */
  private targetOf(url: string): PostTarget | UrlRejectedError {
    const known = this.targets.get(url);
    if (known) return known;
    let target: PostTarget | UrlRejectedError;
    try {
      target = postTargetOf(this.urlPolicy.parse(url));
    } catch (error) {
      if (!(error instanceof UrlRejectedError)) throw error;
      target = error;
    }
    if (this.targets.size >= 10_000) this.targets.clear();
    this.targets.set(url, target);
    return target;
  }

  private agentFor(connectTimeoutMs: number): Agent {
    let agent = this.agents.get(connectTimeoutMs);
    if (!agent) {
      const connect = buildConnector({ timeout: connectTimeoutMs, lookup: this.lookup });
      agent = new Agent({
        connect: (options, callback) =>
          connect(options, (...args) => {
            if (args[1]) readInShortChunks(args[1]);
            callback(...args);
          }),
        maxHeaderSize: MAX_RESPONSE_HEADER_BYTES,
        keepAliveTimeout: 30_000,
        keepAliveMaxTimeout: 120_000,
      });
      this.agents.set(connectTimeoutMs, agent);
    }
    return agent;
  }
}

/**
 * undici reads a socket with `read()`, which hands over everything buffered (64 KiB and more).
 * This socket's `read()` hands over at most PARSER_READ_BYTES, and nothing once it is destroyed,
 * so a parse that destroyed it (header overflow) ends within PARSER_READ_BYTES.
 */
function readInShortChunks(socket: Socket): void {
  const read = socket.read.bind(socket);
  socket.read = (size?: number): unknown => {
    if (socket.destroyed) return null;
    if (size === undefined && socket.readableLength > PARSER_READ_BYTES) return read(PARSER_READ_BYTES);
    return read(size);
  };
}

function blocked(error: UrlRejectedError): Omit<AttemptResult, "startedAt" | "finishedAt" | "durationMs"> {
  return { responseStatus: null, responseBodyExcerpt: null, error: { kind: "blocked_address", message: error.message } };
}

/** The policy's refusal raised inside the lookup hook, however undici wrapped it. */
function rejectionIn(error: unknown): UrlRejectedError | undefined {
  for (let current = error, depth = 0; current && depth < 5; depth++) {
    if (current instanceof UrlRejectedError) return current;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

/**
 * At most `maxBytes` of valid UTF-8. Invalid bytes decode to U+FFFD (3 bytes each), so the length is
 * checked after decoding; NUL, which Postgres text refuses, is dropped.
 */
export function truncateUtf8(buffer: Buffer, maxBytes: number): string {
  let text = buffer.subarray(0, maxBytes + 4).toString("utf8").replaceAll("\u0000", "");
  if (Buffer.byteLength(text) <= maxBytes) return text;
  text = Buffer.from(text).subarray(0, maxBytes).toString("utf8");
  // A character cut in half at the end decodes to U+FFFD; drop characters until the bytes fit.
  while (Buffer.byteLength(text) > maxBytes) text = text.slice(0, -1);
  return text;
}

function codeOf(error: unknown): string {
  const candidate = error as { code?: unknown; cause?: { code?: unknown } };
  return String(candidate?.code ?? candidate?.cause?.code ?? "");
}

function errorKind(error: unknown): ErrorKind {
  const code = codeOf(error);
  if (code === "UND_ERR_HEADERS_TIMEOUT" || code === "UND_ERR_BODY_TIMEOUT") return "timeout";
  if (code === "UND_ERR_CONNECT_TIMEOUT") return "connect";
  if (code === "ENOTFOUND" || code === "EAI_AGAIN" || code === "EAI_NONAME") return "dns";
  if (/^(ERR_TLS|ERR_SSL|CERT_|UNABLE_TO_|DEPTH_ZERO|SELF_SIGNED|EPROTO$)/.test(code)) return "tls";
  if (/^(ECONN|EHOST|ENET|EPIPE|UND_ERR_SOCKET|UND_ERR_CLOSED)/.test(code)) return "connect";
  return "other";
}

function describe(error: unknown): string {
  const err = error as Error & { code?: string; cause?: Error & { code?: string } };
  const code = err.code ?? err.cause?.code;
  const message = err.cause?.message ?? err.message ?? String(error);
  return (code ? `${code}: ${message}` : message).slice(0, 500);
}
