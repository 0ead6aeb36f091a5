import { describe, expect, it } from "vitest";
import { AnsweringDestinations } from "../src/outbox/worker/answering.js";

describe("destinations that answer quickly", () => {
  it("counts an HTTP answer of any status within the threshold, and nothing else", () => {
    let now = 0;
    const answering = new AnsweringDestinations(1_000, () => now);
    answering.ended("ok:443", true, 5);
    answering.ended("error:443", true, 999);
    answering.ended("slow:443", true, 1_000);
    answering.ended("refused:443", false, 1);
    expect(answering.list().sort()).toEqual(["error:443", "ok:443"]);
    now = 1;
    expect(answering.list().sort()).toEqual(["error:443", "ok:443"]);
  });

  it("forgets a destination that has not answered quickly within the threshold", () => {
    let now = 0;
    const answering = new AnsweringDestinations(1_000, () => now);
    answering.ended("a:443", true, 5);
    now = 600;
    answering.ended("b:443", true, 5);
    now = 1_000;
    expect(answering.list().sort()).toEqual(["a:443", "b:443"]);
    now = 1_001;
    expect(answering.list()).toEqual(["b:443"]);
    // A slow answer is no evidence: it does not renew the destination.
    answering.ended("b:443", true, 2_000);
    now = 1_601;
    expect(answering.list()).toEqual([]);
  });

  it("treats no destination as fast when the threshold is 0", () => {
    const answering = new AnsweringDestinations(0, () => 0);
    answering.ended("a:443", true, 0);
    expect(answering.list()).toEqual([]);
  });
});
