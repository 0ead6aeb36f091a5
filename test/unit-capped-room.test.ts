import { describe, expect, it } from "vitest";
import { CappedRoom } from "../src/outbox/worker/capped-room.js";

const holding = (counts: Record<string, number>) => (destinations: Iterable<string>) =>
  [...destinations].reduce((sum, destination) => sum + (counts[destination] ?? 0), 0);

describe("room at capped destinations", () => {
  it("is worth a claim once the smallest claim worth a round trip has ended there", () => {
    const room = new CappedRoom();
    room.reset(["a:443"], holding({ "a:443": 64 }), 24, 64);
    expect(room.any).toBe(true);
    const verdicts = Array.from({ length: 24 }, () => room.ended("a:443"));
    expect(verdicts.slice(0, 23)).toEqual(Array(23).fill(false));
    expect(verdicts[23]).toBe(true);
  });

  it("never waits for more than half the cap, nor for more than this worker holds", () => {
    const halfCap = new CappedRoom();
    halfCap.reset(["a:443"], holding({ "a:443": 8 }), 24, 8);
    expect([1, 2, 3, 4].map(() => halfCap.ended("a:443"))).toEqual([false, false, false, true]);
    const fewHeld = new CappedRoom();
    fewHeld.reset(["a:443", "b:443"], holding({ "a:443": 1, "b:443": 1 }), 24, 64);
    expect([fewHeld.ended("b:443"), fewHeld.ended("a:443")]).toEqual([false, true]);
    const noneHeld = new CappedRoom();
    noneHeld.reset(["a:443"], holding({}), 24, 64);
    expect(noneHeld.ended("a:443")).toBe(true);
  });

  it("ignores attempts to destinations that were not at their cap, and starts over at each claim", () => {
    const room = new CappedRoom();
    room.reset(["a:443"], holding({ "a:443": 2 }), 24, 64);
    expect(room.ended("b:443")).toBe(false);
    expect(room.ended("a:443")).toBe(false);
    room.reset([], holding({}), 24, 64);
    expect(room.any).toBe(false);
    expect(room.ended("a:443")).toBe(false);
  });
});
