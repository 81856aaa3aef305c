/// <reference types="vite/client" />

interface ImportMetaEnv {
  /** The Pulsebase server; defaults to the page's own origin (as served by `pulsebase dev --static-dir`). */
  readonly VITE_CONVEX_URL?: string;
}
