import { AppError } from "../errors.js";
import { isUuid } from "../uuid.js";

export interface Cursor {
  createdAt: Date;
  id: string;
}


/** An opaque keyset cursor: the (created_at, id) of the last row of the previous page. */
export function encodeCursor(cursor: Cursor): string {
  return Buffer.from(`${cursor.createdAt.toISOString()}|${cursor.id}`).toString("base64url");
}

export function decodeCursor(text: string): Cursor {
  const [iso, id] = Buffer.from(text, "base64url").toString("utf8").split("|");
  const createdAt = new Date(iso ?? "");
  if (!id || !isUuid(id) || Number.isNaN(createdAt.getTime())) {
    throw new AppError(400, "INVALID_CURSOR", "cursor is not one this API returned");
  }
  return { createdAt, id };
}
