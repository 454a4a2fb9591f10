import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["node_modules/", "dist/", "charts/", "crds/", "tools/*/", ".cache/"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
    },
  },
  {
    files: ["operator/**/*.ts", "gateway/**/*.ts"],
    ignores: ["operator/**/*.test.ts", "gateway/**/*.test.ts", "operator/cli/**", "gateway/bench/**"],
    rules: { "no-console": "error" },
  },
);
