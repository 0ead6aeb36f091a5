/**
 * An error a caller can act on: a stable SNAKE_CASE code, an HTTP status and a message.
 * Raised by any layer; the HTTP layer renders it as {"error":{"code","message"}}.
 */
export class AppError extends Error {
  constructor(
    readonly status: 400 | 401 | 403 | 404 | 409 | 413 | 415 | 422 | 429 | 500 | 503,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "AppError";
  }
}

export const notFound = (what: string) => new AppError(404, `${what.toUpperCase()}_NOT_FOUND`, `${what} not found`);

/**
 * A write made with an API key that, when its statement ran, was revoked, unknown or another
 * tenant's: nothing was written. The HTTP layer answers it as 401.
 */
export class ApiKeyRejectedError extends Error {
  constructor() {
    super("invalid or revoked API key");
    this.name = "ApiKeyRejectedError";
  }
}

/**
 * A create carried an Idempotency-Key that an earlier create of the last 24 h used with another
 * request (route or body): nothing was written. The HTTP layer answers it as 409.
 */
export class IdempotencyKeyReusedError extends Error {
  readonly code = "IDEMPOTENCY_KEY_REUSED";
  constructor() {
    super("this Idempotency-Key was used with another request within 24 h; use a new key for a new request");
    this.name = "IdempotencyKeyReusedError";
  }
}
