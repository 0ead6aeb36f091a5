/**
 * The outbox's errors: what a caller did wrong or asked for in vain, with a stable SNAKE_CASE
 * `code`. They carry no HTTP status; the HTTP layer (src/http/errors.ts) maps them. Each is
 * thrown before anything is written, so the caller's transaction is left as it was.
 */
export abstract class OutboxError extends Error {
  abstract readonly code: string;
}

/** The tenant id names no tenant (or is not a uuid). */
export class UnknownTenantError extends OutboxError {
  readonly code = "UNKNOWN_TENANT";
  constructor(readonly tenantId: string) {
    super(`no tenant has the id ${JSON.stringify(tenantId.slice(0, 64))}`);
    this.name = "UnknownTenantError";
  }
}

/** The payload is not a JSON value (undefined, a function, a BigInt, a cycle, NaN, a Date…) or is too large. */
export class InvalidPayloadError extends OutboxError {
  readonly code = "INVALID_PAYLOAD";
  constructor(reason: string) {
    super(`the payload is not a JSON value: ${reason}`);
    this.name = "InvalidPayloadError";
  }
}

/** An event type, idempotency key or tenant name that is empty, too long, or not text Postgres can store. */
export class InvalidArgumentError extends OutboxError {
  readonly code = "INVALID_ARGUMENT";
  constructor(
    readonly field: "eventType" | "idempotencyKey" | "name",
    reason: string,
  ) {
    super(`${field} ${reason}`);
    this.name = "InvalidArgumentError";
  }
}

/** No delivery has this id (for this tenant, when one is named). */
export class DeliveryNotFoundError extends OutboxError {
  readonly code = "DELIVERY_NOT_FOUND";
  constructor(readonly deliveryId: string) {
    super("delivery not found");
    this.name = "DeliveryNotFoundError";
  }
}

/** The delivery is pending or delivering: only a finished one can be redelivered. */
export class DeliveryInFlightError extends OutboxError {
  readonly code = "DELIVERY_IN_FLIGHT";
  constructor(
    readonly deliveryId: string,
    readonly status: string,
  ) {
    super(`delivery ${deliveryId} is ${status}; it can be redelivered once it has succeeded or failed`);
    this.name = "DeliveryInFlightError";
  }
}

/** No destination has this id (for this tenant, when one is named). */
export class DestinationNotFoundError extends OutboxError {
  readonly code = "DESTINATION_NOT_FOUND";
  constructor(readonly destinationId: string) {
    super("destination not found");
    this.name = "DestinationNotFoundError";
  }
}

/** No replay has this id (for this tenant, when one is named). */
export class ReplayNotFoundError extends OutboxError {
  readonly code = "REPLAY_NOT_FOUND";
  constructor(readonly replayId: string) {
    super("replay not found");
    this.name = "ReplayNotFoundError";
  }
}
