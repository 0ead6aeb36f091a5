import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { Logger } from "pino";
import type { ZodError } from "zod";
import { isDatabaseUnavailable } from "../db/errors.js";
import { ApiKeyRejectedError, AppError, IdempotencyKeyReusedError } from "../errors.js";
import {
  DeliveryInFlightError,
  DeliveryNotFoundError,
  DestinationNotFoundError,
  InvalidArgumentError,
  InvalidPayloadError,
  OutboxError,
  ReplayNotFoundError,
  UnknownTenantError,
} from "../outbox/errors.js";

export interface ErrorBody {
  error: { code: string; message: string };
}

export function errorBody(code: string, message: string): ErrorBody {
  return { error: { code, message } };
}

export function sendError(c: Context, status: ContentfulStatusCode, code: string, message: string): Response {
  return c.json(errorBody(code, message), status);
}

/** The hook @hono/zod-openapi calls after validating a request part: 400 with every problem named. */
export function validationHook(
  result: { success: true } | { success: false; error: ZodError; target?: string },
  c: Context,
): Response | undefined {
  if (result.success) return undefined;
  const problems = result.error.issues.map((issue) => {
    const path = issue.path.join(".");
    return path ? `${path}: ${issue.message}` : issue.message;
  });
  return sendError(c, 400, "VALIDATION_FAILED", problems.join("; "));
}

/** The status of each of the outbox's domain errors; their code and message pass through. */
function outboxErrorStatus(error: OutboxError): ContentfulStatusCode {
  if (error instanceof DeliveryNotFoundError || error instanceof DestinationNotFoundError ||
    error instanceof ReplayNotFoundError ||
    error instanceof UnknownTenantError) {
    return 404;
  }
  if (error instanceof DeliveryInFlightError) return 409;
  if (error instanceof InvalidPayloadError || error instanceof InvalidArgumentError) return 400;
  return 500;
}

/** Every thrown error becomes the JSON error shape; unexpected ones are logged and hidden. */
export function errorHandler(logger: Logger) {
  return (error: Error, c: Context): Response => {
    if (error instanceof AppError) return sendError(c, error.status, error.code, error.message);
    if (error instanceof ApiKeyRejectedError) return sendError(c, 401, "UNAUTHORIZED", error.message);
    if (error instanceof IdempotencyKeyReusedError) return sendError(c, 409, error.code, error.message);
    if (error instanceof OutboxError) return sendError(c, outboxErrorStatus(error), error.code, error.message);
    if (error instanceof HTTPException) {
      if (error.message.startsWith("Malformed JSON")) return sendError(c, 400, "INVALID_JSON", "the body is not valid JSON");
      const status = error.status as ContentfulStatusCode;
      return sendError(c, status, status === 413 ? "PAYLOAD_TOO_LARGE" : "HTTP_ERROR", error.message || "request refused");
    }
    if (isDatabaseUnavailable(error)) {
      logger.warn({ err: error, requestId: c.get("requestId"), method: c.req.method, path: c.req.path }, "database unavailable");
      c.header("Retry-After", "1");
      return sendError(c, 503, "DATABASE_UNAVAILABLE", "the database is unreachable; try again shortly");
    }
    logger.error({ err: error, requestId: c.get("requestId"), method: c.req.method, path: c.req.path }, "unhandled error");
    return sendError(c, 500, "INTERNAL_ERROR", "internal error");
  };
}
