import { describe, expect, it } from "vitest";
import { truncateUtf8 } from "../src/delivery/http-sender.js";

describe("the stored response excerpt", () => {
  it.each([
    ["ascii", Buffer.from("a".repeat(5000))],
    ["multi-byte characters across the cut", Buffer.from("é".repeat(3000))],
    ["invalid UTF-8", Buffer.alloc(3000, 0xff)],
    ["NUL bytes", Buffer.from(`${"\u0000".repeat(10)}ok`)],
  ])("fits 1 KiB of valid text for %s", (_name, body) => {
    const excerpt = truncateUtf8(body, 1024);
    expect(Buffer.byteLength(excerpt)).toBeLessThanOrEqual(1024);
    expect(excerpt).not.toContain("\u0000");
    expect(excerpt.length).toBeGreaterThan(0);
  });
});
