import { sql, type AnyColumn, type SQL } from "drizzle-orm";

/**
 * `column desc nulls last`: the order of the schema's `.desc()` indexes (drizzle writes them
 * NULLS LAST). A plain `desc` means NULLS FIRST, which such an index cannot serve, so Postgres
 * would sort the whole set instead of reading the index in order.
 */
export const newestFirst = (column: AnyColumn): SQL => sql`${column} desc nulls last`;
