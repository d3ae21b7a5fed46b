import { defineConfig } from "vite";
import { svelte } from "@sveltejs/vite-plugin-svelte";

// The panel is served from the app bundle, never from a network: no CDN, no remote assets.
export default defineConfig({
  plugins: [svelte()],
  clearScreen: false,
  server: { port: 5173, strictPort: true },
  build: { target: "safari15", outDir: "dist", emptyOutDir: true },
  test: { environment: "node", include: ["src/**/*.test.ts"] },
});
