import { MAX_EVENT_TYPE_LENGTH, MAX_IDEMPOTENCY_KEY_LENGTH } from "../db/schema.js";
import { UrlRejectedError, type UrlPolicy } from "../delivery/url-policy.js";
import { isUuid } from "../uuid.js";
import { InvalidArgumentError, InvalidPayloadError, UnknownTenantError } from "./errors.js";

/*
 * What an enqueue through the library checks before it writes: every refusal is a typed error
 * thrown before any statement runs, so a caller's transaction is never aborted by a value Postgres
 * would refuse (a NUL in text, an unpaired surrogate in jsonb, a malformed uuid).
 */

/** The largest payload accepted by default, in bytes of its JSON (the library's and the SQL API's). */
export const MAX_PAYLOAD_BYTES_DEFAULT = 1_048_576;

/** Nesting deeper than this is refused: no webhook needs it, and the walk stays far from the stack's limit. */
export const MAX_PAYLOAD_DEPTH = 256;

const UNPAIRED_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** Why `text` cannot be stored as Postgres text or inside jsonb, if it cannot. */
function unstorable(text: string): string | undefined {
  if (text.includes("\u0000")) return "contains U+0000 (NUL), which Postgres cannot store";
  if (UNPAIRED_SURROGATE.test(text)) return "contains an unpaired UTF-16 surrogate, which is not Unicode text";
  return undefined;
}

/**
 * The payload as the JSON text to store, or InvalidPayloadError naming the first offending value by
 * its path (`payload.items[2].price`). Only what JSON can say exactly is accepted: null, booleans,
 * finite numbers, strings, arrays and plain objects; not undefined (even as a property: JSON.stringify
 * would drop it silently), functions, symbols, BigInts, NaN or Infinity, Dates, Maps, class
 * instances, or cycles.
 */
export function serializePayload(payload: unknown, maxBytes: number): string {
  const ancestors = new Set<object>();
  const visit = (value: unknown, path: string, depth: number): void => {
    if (depth > MAX_PAYLOAD_DEPTH) throw new InvalidPayloadError(`${path} is nested more than ${MAX_PAYLOAD_DEPTH} levels deep`);
    if (value === null || typeof value === "boolean") return;
    if (typeof value === "number") {
      if (!Number.isFinite(value)) throw new InvalidPayloadError(`${path} is ${value}, which JSON cannot represent`);
      return;
    }
    if (typeof value === "string") {
      const reason = unstorable(value);
      if (reason) throw new InvalidPayloadError(`${path} ${reason}`);
      return;
    }
    if (typeof value !== "object") throw new InvalidPayloadError(`${path} is ${describe(value)}, which JSON cannot represent`);
    if (ancestors.has(value)) throw new InvalidPayloadError(`${path} refers back to one of its ancestors (a cycle)`);
    ancestors.add(value);
    if (Array.isArray(value)) {
      // A hole in a sparse array reads as undefined, and is refused like one.
      for (let index = 0; index < value.length; index++) visit(value[index], `${path}[${index}]`, depth + 1);
    } else {
      const prototype = Object.getPrototypeOf(value) as unknown;
      if (prototype !== Object.prototype && prototype !== null) {
        throw new InvalidPayloadError(`${path} is ${describe(value)}; pass plain objects, arrays and primitives (a date as date.toISOString())`);
      }
      for (const key of Object.keys(value)) {
        const reason = unstorable(key);
        if (reason) throw new InvalidPayloadError(`a key of ${path} ${reason}`);
        visit((value as Record<string, unknown>)[key], `${path}${/^[A-Za-z_$][\w$]*$/.test(key) ? `.${key}` : `[${JSON.stringify(key)}]`}`, depth + 1);
      }
    }
    ancestors.delete(value);
  };
  visit(payload, "payload", 0);
  const text = JSON.stringify(payload);
  const bytes = Buffer.byteLength(text, "utf8");
  if (bytes > maxBytes) throw new InvalidPayloadError(`it is ${bytes} bytes as JSON, more than the ${maxBytes} allowed`);
  return text;
}

function describe(value: unknown): string {
  if (value === undefined) return "undefined";
  if (typeof value === "bigint") return "a BigInt";
  if (typeof value === "function") return "a function";
  if (typeof value === "symbol") return "a symbol";
  const name = (value as { constructor?: { name?: unknown } }).constructor?.name;
  return typeof name === "string" && name !== "" ? `a ${name}` : "an object with a prototype";
}

/** A tenant id as the SQL will read it: a uuid, or no tenant at all. */
export function admitTenantId(tenantId: unknown): string {
  if (typeof tenantId !== "string" || !isUuid(tenantId)) throw new UnknownTenantError(String(tenantId));
  return tenantId.toLowerCase();
}

/** Text for a column: a string of 1..max characters Postgres can store. */
export function admitText(field: InvalidArgumentError["field"], value: unknown, max: number): string {
  if (typeof value !== "string") throw new InvalidArgumentError(field, `must be a string, not ${value === null ? "null" : typeof value}`);
  if (value.length === 0) throw new InvalidArgumentError(field, "must not be empty");
  if (value.length > max) throw new InvalidArgumentError(field, `must be at most ${max} characters (got ${value.length})`);
  const reason = unstorable(value);
  if (reason) throw new InvalidArgumentError(field, reason);
  return value;
}

export const admitEventType = (value: unknown) => admitText("eventType", value, MAX_EVENT_TYPE_LENGTH);
export const admitIdempotencyKey = (value: unknown) =>
  value === undefined || value === null ? undefined : admitText("idempotencyKey", value, MAX_IDEMPOTENCY_KEY_LENGTH);

/**
 * The URL as it will be stored: the policy's form and IP-literal checks (the sender resolves and
 * vets the host's addresses before every attempt), and nothing a URL parser would silently drop.
 */
export function admitUrl(urlPolicy: UrlPolicy, url: unknown): string {
  if (typeof url !== "string") throw new UrlRejectedError("the URL must be a string");
  // eslint-disable-next-line no-control-regex -- control characters are what this refuses
  if (/[\u0000-\u0020\u007f]/.test(url)) throw new UrlRejectedError("the URL contains whitespace or a control character");
  if (unstorable(url)) throw new UrlRejectedError("the URL is not Unicode text");
  urlPolicy.parse(url);
  return url;
}
