// The app imports the generated `api` from the repo's own functions/_generated/ (written by
// `pulsebase codegen` and by `pulsebase dev` on every change), as a Convex app imports
// convex/_generated/. That folder has no node_modules of its own, so `convex` is resolved
// from this example (dedupe), and the dev server may read files from the repo root.
import { fileURLToPath } from "node:url";
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

const repoRoot = fileURLToPath(new URL("../..", import.meta.url));

export default defineConfig({
  plugins: [react()],
  resolve: { dedupe: ["convex", "react", "react-dom"] },
  server: { fs: { allow: [repoRoot] } },
  build: { chunkSizeWarningLimit: 1024 },
});
