import type { Database } from "../../src/db/client.js";

/** `database`, counting in `counts` how many times each named statement ran. */
export function countingDatabase(database: Database, counts: Map<string, number>): Database {
  return {
    ...database,
    query<Row>(text: string, params?: unknown[], name?: string): Promise<Row[]> {
      if (name) counts.set(name, (counts.get(name) ?? 0) + 1);
      return database.query<Row>(text, params, name);
    },
  };
}
