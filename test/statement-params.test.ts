import { describe, expect, it } from "vitest";
import { StatementParams } from "../src/db/statement-params.js";

describe("StatementParams", () => {
  it("numbers parameters by first use, the same name the same number, and binds values by name", () => {
    const params = new StatementParams();
    const text = `select ${params.ref("b")}, ${params.ref("a")}, ${params.ref("b")}`;
    expect(text).toBe("select $1, $2, $1");
    expect(params.values({ a: "A", b: "B", unused: 1 })).toEqual(["B", "A"]);
  });

  it("refuses to bind a statement with a value missing", () => {
    const params = new StatementParams();
    params.ref("present");
    params.ref("absent");
    expect(() => params.values({ present: 1 })).toThrow(/"absent"/);
  });
});
