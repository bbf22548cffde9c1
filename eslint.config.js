// Lint configuration: typescript-eslint's recommended type-aware rules plus a few
// that matter for a network daemon (no floating promises, no unused values).
import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["node_modules/**", "var/**", "dist/**", "coverage/**", "eslint.config.js"] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      "@typescript-eslint/no-floating-promises": [
        "error",
        // node:test's test()/describe() return promises the runner itself awaits.
        { allowForKnownSafeCalls: [{ from: "package", package: "node:test", name: ["test", "it", "describe", "suite"] }] },
      ],
      "@typescript-eslint/no-misused-promises": ["error", { checksVoidReturn: { arguments: false } }],
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "@typescript-eslint/restrict-template-expressions": ["error", { allowNumber: true, allowBoolean: true }],
      "@typescript-eslint/only-throw-error": "error",
      // A protocol server checks for control characters on purpose.
      "no-control-regex": "off",
      "no-constant-condition": ["error", { checkLoops: false }],
      "eqeqeq": ["error", "always"],
    },
  },
  {
    // Folder boundaries: code in one folder of src/ reaches another only through
    // its public face (index.ts); test helpers live in test/, not in src/.
    files: ["src/**/*.ts"],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          patterns: [
            { regex: "^\\.\\./[a-z0-9-]+/(?!index\\.ts$)[^/]+$", message: "Import another folder of src/ through its index.ts." },
            { regex: "(^|/)(test-util|testing)\\.ts$", message: "Test helpers live in test/helpers." },
          ],
        },
      ],
    },
  },
  {
    // An ES module import of node:http reads every export; its lazy getters
    // (WebSocket, MessageEvent...) load undici and http2 into that thread's
    // heap. Take the module with process.getBuiltinModule("node:http").
    files: ["src/**/*.ts"],
    ignores: ["src/**/*.test.ts"],
    rules: {
      "@typescript-eslint/no-restricted-imports": ["error", { paths: [{ name: "node:http", allowTypeImports: true, message: "Use process.getBuiltinModule(\"node:http\") (an ES import of node:http loads undici and http2)." }] }],
    },
  },
);
