import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

/** The README and docs/ are what a fresh clone reads: small, linked within the repository, reference only. */

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const PAGES = ["README.md", ...readdirSync(join(ROOT, "docs")).filter((name) => name.endsWith(".md")).map((name) => `docs/${name}`)];
const read = (page: string) => readFileSync(join(ROOT, page), "utf8");

/** GitHub's heading anchors: lower case, punctuation dropped, spaces as dashes. */
function anchors(markdown: string): Set<string> {
  const outsideCode = markdown.replace(/^```[\s\S]*?^```/gm, "");
  return new Set(
    [...outsideCode.matchAll(/^#{1,6}\s+(.+)$/gm)].map((match) =>
      (match[1] ?? "")
        .trim()
        .toLowerCase()
        .replace(/[^\p{L}\p{N}\s_-]/gu, "")
        .replace(/\s/g, "-"),
    ),
  );
}

/** Markdown links outside code blocks and code spans. */
function links(markdown: string): string[] {
  const prose = markdown.replace(/^```[\s\S]*?^```/gm, "").replace(/`[^`\n]*`/g, "");
  return [...prose.matchAll(/\]\(([^)\s]+)\)/g)].map((match) => match[1] ?? "");
}

describe("the README and docs/", () => {
  it("keep the README under 15 KiB", () => {
    expect(Buffer.byteLength(read("README.md"))).toBeLessThanOrEqual(15_360);
  });

  it("link only to files of the repository that exist, and to headings that exist", () => {
    const problems: string[] = [];
    let checked = 0;
    for (const page of PAGES) {
      for (const link of links(read(page))) {
        checked++;
        if (/^[a-z]+:/i.test(link)) {
          problems.push(`${page}: ${link} leaves the repository`);
          continue;
        }
        const [path = "", anchor] = link.split("#");
        const target = path === "" ? join(ROOT, page) : resolve(dirname(join(ROOT, page)), path);
        if (relative(ROOT, target).startsWith("..")) problems.push(`${page}: ${link} leaves the repository`);
        else if (!existsSync(target)) problems.push(`${page}: ${link} does not exist`);
        else if (anchor && target.endsWith(".md") && !anchors(readFileSync(target, "utf8")).has(anchor)) {
          problems.push(`${page}: ${link} names no heading of ${relative(ROOT, target)}`);
        }
      }
    }
    expect(problems).toEqual([]);
    expect(checked).toBeGreaterThan(20);
  });

  it("link every page of docs/ from the README", () => {
    const linked = new Set(links(read("README.md")).map((link) => link.split("#")[0]));
    expect(PAGES.filter((page) => page !== "README.md" && !linked.has(page))).toEqual([]);
  });

  it("are reference, not a history of work", () => {
    const history = /\b(?:sessions?|runs? \d+|the issue|this change)\b|\.\.\/shared/i;
    for (const page of PAGES) {
      const lines = read(page).split("\n").filter((line) => history.test(line));
      expect(lines, page).toEqual([]);
    }
  });

  it("give exactly two set-up commands under Two commands: one runs the service, one passes the tests", () => {
    const section = read("README.md").split(/^## Two commands\s*$/m)[1]?.split(/^## /m)[0] ?? "";
    const block = /```sh\n([\s\S]*?)```/.exec(section)?.[1] ?? "";
    const commands = block
      .split("\n")
      .map((line) => line.replace(/#.*$/, "").trim())
      .filter(Boolean);
    expect(commands).toEqual(["npm ci && npm start", "npm ci && npm test"]);
  });
});
