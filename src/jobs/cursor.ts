import { AppError } from "../errors.js";
import { isUuid } from "../uuid.js";

export interface Cursor {
  createdAt: Date;
  id: string;
}

/**
 * True for an instant Postgres timestamptz stores and JS Date round-trips: UTC years 0001 to 9999.
 * Outside them `toISOString()` (what the driver sends) writes a year Postgres refuses
 * ("0000-…", "-000001-…", "+010000-…").
 */
export function isStorableInstant(date: Date): boolean {
  const time = date.getTime();
  if (Number.isNaN(time)) return false;
  const year = date.getUTCFullYear();
  return year >= 1 && year <= 9999;
}

/** An opaque keyset cursor: the (created_at, id) of the last row of the previous page. */
export function encodeCursor(cursor: Cursor): string {
  return Buffer.from(`${cursor.createdAt.toISOString()}|${cursor.id}`).toString("base64url");
}

/** The cursor `encodeCursor` wrote, exactly; anything else is INVALID_CURSOR. */
export function decodeCursor(text: string): Cursor {
  const [iso, id, ...rest] = Buffer.from(text, "base64url").toString("utf8").split("|");
  const createdAt = new Date(iso ?? "");
  if (
    rest.length > 0 ||
    !id ||
    !isUuid(id) ||
    !isStorableInstant(createdAt) ||
    // Only the form toISOString writes: `new Date` also reads "2020", "March 7" and friends.
    createdAt.toISOString() !== iso
  ) {
    throw new AppError(400, "INVALID_CURSOR", "cursor is not one this API returned");
  }
  return { createdAt, id };
}
