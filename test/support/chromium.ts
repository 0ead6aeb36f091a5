import { existsSync } from "node:fs";

/** Debian's Chromium, driven by playwright-core; never a downloaded browser. Undefined when it is not installed. */
export const CHROMIUM = ["/usr/bin/chromium", "/usr/bin/chromium-headless-shell"].find((path) => existsSync(path));
