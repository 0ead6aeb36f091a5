import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["dist/", "node_modules/", "migrations/", ".data/", "coverage/", ".scratch/", "bench/results/"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
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
);
