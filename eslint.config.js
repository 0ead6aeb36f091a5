import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["dist/", "node_modules/", "migrations/", ".data/", "coverage/", ".scratch/", ".scratch-*/", "bench/results/", "examples/**/node_modules/"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  // The outbox core knows nothing of its producers (the job API), the HTTP layer or the process's
  // configuration: those depend on it, never the other way round.
  {
    files: ["src/outbox/**/*.ts"],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          patterns: [
            {
              group: ["../jobs/*", "../../jobs/*", "../http/*", "../../http/*", "../library/*", "../../library/*"],
              message: "the outbox core must not depend on its producers or the HTTP layer",
            },
            {
              group: ["../config.js", "../../config.js", "../service.js", "../../service.js", "../cli.js", "../../cli.js"],
              message: "the outbox core takes its settings as options, not from the process's configuration",
            },
            {
              group: ["../errors.js", "../../errors.js"],
              message: "the outbox core throws its own domain errors (src/outbox/errors.ts); only the HTTP layer picks statuses",
            },
          ],
        },
      ],
    },
  },
  // The example receivers are plain Node scripts.
  { files: ["examples/**/*.mjs"], languageOptions: { globals: { process: "readonly", Buffer: "readonly", console: "readonly" } } },
  {
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "@typescript-eslint/consistent-type-imports": "error",
      // drizzle-orm 0.45's transaction() sends BEGIN outside its try/finally: a failed BEGIN never
      // returns its connection to the pool. Database.transactionDb is the safe form.
      "no-restricted-syntax": [
        "error",
        {
          selector: "CallExpression[callee.property.name='transaction'][callee.object.property.name='db']",
          message: "use database.transactionDb(): drizzle's db.transaction() leaks a connection when BEGIN fails",
        },
        {
          selector: "CallExpression[callee.property.name='transaction'][callee.object.name='db']",
          message: "use database.transactionDb(): drizzle's db.transaction() leaks a connection when BEGIN fails",
        },
      ],
    },
  },
  // The example applications hold their transactions the way applications do (drizzle's
  // db.transaction()); no-restricted-syntax above guards this package's own pool.
  { files: ["examples/**/*.ts"], rules: { "no-restricted-syntax": "off" } },
);
