import type { z } from "@hono/zod-openapi";
import { ErrorSchema } from "./schemas.js";

const ERROR_DESCRIPTIONS: Record<number, string> = {
  400: "Invalid request (VALIDATION_FAILED, INVALID_JSON, WEBHOOK_URL_REJECTED, INVALID_CURSOR)",
  401: "Missing, invalid or revoked credentials",
  404: "Not found, or not this tenant's",
  409: "The request conflicts with the current state",
  413: "Body larger than 64 KiB",
  415: "Content-Type is not application/json",
  429: "Rate limit exceeded",
  503: "Not ready",
};

export function errorResponses(...statuses: number[]) {
  return Object.fromEntries(
    statuses.map((status) => [
      status,
      { description: ERROR_DESCRIPTIONS[status] ?? "Error", content: { "application/json": { schema: ErrorSchema } } },
    ]),
  );
}

export function jsonResponse<T extends z.ZodType>(schema: T, description: string) {
  return { description, content: { "application/json": { schema } } };
}

export function jsonBody<T extends z.ZodType>(schema: T) {
  return { required: true, content: { "application/json": { schema } } };
}
