import type { IncomingHttpHeaders } from "node:http";
import type { Dispatcher } from "undici";

/** Where one POST goes: the parts undici's dispatcher takes, split from the URL once. */
export interface PostTarget {
  origin: string;
  path: string;
}

export function postTargetOf(url: URL): PostTarget {
  return { origin: url.origin, path: `${url.pathname}${url.search}` };
}

export interface PostInput {
  target: PostTarget;
  headers: Record<string, string>;
  body: string;
  /** The whole exchange, from dispatch to the last byte read. */
  timeoutMs: number;
  /** Bytes of the answer read at most; past them the connection is dropped. */
  readCapBytes: number;
  /** Header fields of the answer accepted at most (a repeated name counts each time); unset: no count cap. */
  maxHeaderCount?: number | undefined;
  signal?: AbortSignal | undefined;
}

export type PostOutcome =
  | { kind: "answered"; status: number; headers: IncomingHttpHeaders; body: Buffer }
  /** More header bytes than the dispatcher's `maxHeaderSize`, or more fields than `maxHeaderCount`. */
  | { kind: "headers-over-cap"; over: "bytes" | "count" }
  | { kind: "failed"; error: Error }
  | { kind: "timed-out" }
  | { kind: "aborted" };

/**
 * One POST through undici's dispatcher API: a handler object instead of `request()`'s promise,
 * body stream and per-request AbortSignal, which cost about twice the CPU per request here
 * (README, Performance). Never rejects. Redirects are not followed (a dispatcher never does).
 */
export function postOnce(dispatcher: Dispatcher, input: PostInput): Promise<PostOutcome> {
  return new Promise((resolve) => {
    let controller: Dispatcher.DispatchController | undefined;
    let settled = false;
    let status = 0;
    let headers: IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    let read = 0;

    const settle = (outcome: PostOutcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      input.signal?.removeEventListener("abort", abortFromOutside);
      resolve(outcome);
    };
    const answered = () => settle({ kind: "answered", status, headers, body: Buffer.concat(chunks) });
    // Before the request reaches a socket there is no controller yet: it is aborted when it gets one.
    const stop = (outcome: PostOutcome) => {
      settle(outcome);
      controller?.abort(new Error("attempt ended"));
    };
    const timer = setTimeout(() => stop({ kind: "timed-out" }), input.timeoutMs);
    const abortFromOutside = () => stop({ kind: "aborted" });
    if (input.signal?.aborted) return stop({ kind: "aborted" });
    input.signal?.addEventListener("abort", abortFromOutside, { once: true });

    dispatcher.dispatch(
      { origin: input.target.origin, path: input.target.path, method: "POST", headers: input.headers, body: input.body },
      {
        onRequestStart(started) {
          controller = started;
          if (settled) started.abort(new Error("attempt ended"));
        },
        onResponseStart(_controller, statusCode, responseHeaders) {
          if (input.maxHeaderCount !== undefined && headerCount(responseHeaders) > input.maxHeaderCount) {
            return stop({ kind: "headers-over-cap", over: "count" });
          }
          // 1xx answers are informational; the final status follows.
          if (statusCode < 200) return;
          status = statusCode;
          headers = responseHeaders;
        },
        onResponseData(_controller, chunk) {
          read += chunk.length;
          if (read <= input.readCapBytes) chunks.push(chunk);
          else {
            // Keep what fits and drop the connection rather than drain an endless answer.
            answered();
            controller?.abort(new Error("answer longer than the read cap"));
          }
        },
        onResponseEnd() {
          answered();
        },
        onResponseError(_controller, error) {
          const overflow = (error as { code?: unknown }).code === "UND_ERR_HEADERS_OVERFLOW";
          settle(overflow ? { kind: "headers-over-cap", over: "bytes" } : { kind: "failed", error });
        },
      },
    );
  });
}

function headerCount(headers: IncomingHttpHeaders): number {
  let count = 0;
  for (const name in headers) {
    const value = headers[name];
    count += Array.isArray(value) ? value.length : 1;
  }
  return count;
}
