import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { Hono } from "hono";

/**
 * `/docs`: Swagger UI for `/openapi.json`, every asset served by this process from the
 * `swagger-ui-dist` package (the version the lockfile pins), so the page works with no network.
 * The Content-Security-Policy keeps the browser from fetching anything from elsewhere.
 */

const SWAGGER_UI_DIR = dirname(createRequire(import.meta.url).resolve("swagger-ui-dist/package.json"));

/** The files of swagger-ui-dist the page uses (and their source maps, which a browser's devtools ask for). */
const PACKAGE_ASSETS: Record<string, string> = {
  "swagger-ui.css": "text/css; charset=utf-8",
  "swagger-ui.css.map": "application/json",
  "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
  "swagger-ui-bundle.js.map": "application/json",
  "favicon-32x32.png": "image/png",
};

const TITLE = "webhook-outbox API";

const PAGE = `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>${TITLE}</title>
  <link rel="icon" type="image/png" href="/docs/favicon-32x32.png">
  <link rel="stylesheet" href="/docs/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/swagger-ui-bundle.js"></script>
  <script src="/docs/init.js"></script>
</body>
</html>
`;

/** No validator badge (it would send the document to an outside service); links to operations. */
const INIT_SCRIPT = `window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  validatorUrl: null,
  deepLinking: true,
  displayOperationId: true,
});
`;

export const DOCS_CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  // Swagger UI sets style attributes and inline SVG styles at run time.
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "frame-ancestors 'self'",
  "base-uri 'none'",
  "form-action 'self'",
].join("; ");

const cache = new Map<string, Buffer>();

async function packageAsset(name: string): Promise<Buffer> {
  let content = cache.get(name);
  if (!content) {
    content = await readFile(join(SWAGGER_UI_DIR, name));
    cache.set(name, content);
  }
  return content;
}

export function docsRoutes() {
  const app = new Hono();
  const headers = (type: string) => ({ "content-type": type, "content-security-policy": DOCS_CONTENT_SECURITY_POLICY });
  app.get("/docs", (c) => c.body(PAGE, 200, headers("text/html; charset=utf-8")));
  app.get("/docs/init.js", (c) =>
    c.body(INIT_SCRIPT, 200, { ...headers("text/javascript; charset=utf-8"), "cache-control": "no-cache" }),
  );
  app.get("/docs/:asset", async (c) => {
    const name = c.req.param("asset");
    const type = Object.hasOwn(PACKAGE_ASSETS, name) ? PACKAGE_ASSETS[name] : undefined;
    if (!type) return c.notFound();
    const content = await packageAsset(name);
    return c.body(new Uint8Array(content), 200, { ...headers(type), "cache-control": "public, max-age=86400" });
  });
  return app;
}
