import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseDuration, parseSchedule } from "../src/duration.js";

const UNITS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
type Unit = keyof typeof UNITS;
const unit = fc.constantFrom(...(Object.keys(UNITS) as Unit[]));

/** The shortest text for a whole number of milliseconds, in the largest unit that divides it. */
function format(ms: number): string {
  if (ms === 0) return "0";
  const [name] = (Object.entries(UNITS) as Array<[Unit, number]>)
    .sort(([, a], [, b]) => b - a)
    .find(([, size]) => ms % size === 0) as [Unit, number];
  return `${ms / UNITS[name]}${name}`;
}

describe("parseDuration", () => {
  it.each([
    ["500ms", 500],
    ["10s", 10_000],
    ["5m", 300_000],
    ["24h", 86_400_000],
    ["30d", 2_592_000_000],
    ["0", 0],
    ["0ms", 0],
    ["0s", 0],
    ["0d", 0],
    ["1.5s", 1_500],
    ["0.25h", 900_000],
    ["2.5ms", 3],
    ["0.4ms", 0],
    ["  10s\t", 10_000],
    ["\n0 ", 0],
    ["007s", 7_000],
  ])("reads %j as %d ms", (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it.each([
    ["10", "a bare non-zero number could mean seconds or milliseconds"],
    ["1.5", "a bare decimal"],
    ["00", "a bare number other than 0"],
    ["", "empty"],
    ["   ", "blank"],
    ["s", "a unit without a number"],
    ["10 s", "a space inside"],
    ["10S", "units are lower case"],
    ["10sec", "an unknown unit"],
    ["1w", "weeks are not a unit"],
    ["-5s", "negative"],
    ["+5s", "a sign"],
    [".5s", "a decimal without its integer part"],
    ["5.s", "a decimal point without decimals"],
    ["1e3ms", "exponent notation"],
    ["0x10s", "hexadecimal"],
    ["10s5ms", "compound durations"],
    ["10s,20s", "a list"],
    ["Infinityms", "Infinity"],
    ["NaNs", "NaN"],
  ])("refuses %j (%s) and names the text and the units", (text) => {
    expect(() => parseDuration(text)).toThrow(`"${text}" is not a duration (use a unit: 500ms, 10s, 5m, 24h, 30d)`);
  });

  it("refuses a duration too long to be a whole number of milliseconds instead of returning Infinity or a rounded guess", () => {
    expect(parseDuration(`${Number.MAX_SAFE_INTEGER}ms`)).toBe(Number.MAX_SAFE_INTEGER);
    for (const text of [`${Number.MAX_SAFE_INTEGER + 1}ms`, "99999999999999999999d", `${"9".repeat(400)}ms`, `${"9".repeat(400)}.5s`]) {
      expect(() => parseDuration(text), text).toThrow(/is too long/);
    }
  });

  it("round-trips every whole number of milliseconds through its shortest text", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), (ms) => {
        expect(parseDuration(format(ms))).toBe(ms);
      }),
    );
  });

  it("reads n<unit> as n times the unit, whatever surrounds it", () => {
    const space = fc.constantFrom("", " ", "\t", "  \n");
    fc.assert(
      fc.property(fc.nat({ max: 1_000_000 }), unit, space, space, (n, name, before, after) => {
        expect(parseDuration(`${before}${n}${name}${after}`)).toBe(n * UNITS[name]);
      }),
    );
  });

  it("reads a decimal as the nearest whole millisecond", () => {
    fc.assert(
      fc.property(fc.nat({ max: 100_000 }), fc.stringMatching(/^\d{1,3}$/), unit, (whole, decimals, name) => {
        const text = `${whole}.${decimals}`;
        const ms = parseDuration(`${text}${name}`);
        expect(Number.isInteger(ms)).toBe(true);
        expect(Math.abs(ms - Number(text) * UNITS[name])).toBeLessThanOrEqual(0.5);
      }),
    );
  });

  it("never refuses a number with a unit as anything but too long, and never returns a non-integer", () => {
    fc.assert(
      fc.property(fc.stringMatching(/^\d{1,30}(\.\d{1,30})?$/), unit, (number, name) => {
        let ms: number | undefined;
        try {
          ms = parseDuration(`${number}${name}`);
        } catch (error) {
          expect((error as Error).message).toMatch(/is too long/);
          expect(Number(number) * UNITS[name]).toBeGreaterThanOrEqual(Number.MAX_SAFE_INTEGER);
          return;
        }
        expect(Number.isSafeInteger(ms)).toBe(true);
        expect(ms).toBeGreaterThanOrEqual(0);
      }),
    );
  });
});

describe("parseSchedule", () => {
  it.each([
    ["0,10s,60s", [0, 10_000, 60_000]],
    ["0,30s,30s,30s,30s", [0, 30_000, 30_000, 30_000, 30_000]],
    ["0", [0]],
    ["5m", [300_000]],
    [" 0 , 1.5s ,\t2m ", [0, 1_500, 120_000]],
    ["1d,0,500ms", [86_400_000, 0, 500]],
  ])("reads %j as %j", (text, delays) => {
    expect(parseSchedule(text)).toEqual(delays);
  });

  it.each(["", " ", ",", "0,", ",0", "0,,10s", "0, ,10s", "0;10s"])("refuses %j as not a list of delays", (text) => {
    expect(() => parseSchedule(text)).toThrow(text === "0;10s" ? /is not a duration/ : `"${text}" is not a list of delays such as 0,10s,60s`);
  });

  it("names the bad item of a list", () => {
    expect(() => parseSchedule("0,10,60s")).toThrow('"10" is not a duration');
    expect(() => parseSchedule("0,soon")).toThrow('"soon" is not a duration');
  });

  it("has at most 50 attempts", () => {
    expect(parseSchedule(Array(50).fill("1s").join(","))).toHaveLength(50);
    expect(() => parseSchedule(Array(51).fill("1s").join(","))).toThrow("a retry schedule has at most 50 attempts");
  });

  it("refuses a delay that does not fit the delivery's integer column of milliseconds", () => {
    expect(parseSchedule("0,2147483647ms")).toEqual([0, 2_147_483_647]);
    expect(parseSchedule("0,24d")).toEqual([0, 2_073_600_000]);
    for (const text of ["0,2147483648ms", "0,25d", "0,30d", `0,${"9".repeat(400)}ms`]) {
      expect(() => parseSchedule(text), text).toThrow(/at most 2147483647ms|is too long/);
    }
  });

  it("reads any list of formatted delays back, in order", () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 2_147_483_647 }), { minLength: 1, maxLength: 50 }),
        fc.constantFrom(",", ", ", " ,"),
        (delays, separator) => {
          expect(parseSchedule(delays.map(format).join(separator))).toEqual(delays);
        },
      ),
    );
  });
});
