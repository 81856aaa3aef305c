// The seeds' src/main.tsx with the dev issuer in Clerk's place: <DevAuthProvider> instead of
// <ClerkProvider>, and ConvexProviderWithAuth (the provider ConvexProviderWithClerk wraps)
// fed by useAuthFromDevIssuer instead of ConvexProviderWithClerk fed by Clerk's useAuth.
import React from "react";
import ReactDOM from "react-dom/client";
import { ConvexProviderWithAuth, ConvexReactClient } from "convex/react";
import App from "./App";
import { DevAuthProvider, useAuthFromDevIssuer } from "./devAuth";
import "./index.css";

// Same origin when `pulsebase dev --static-dir examples/react-todo/dist` serves this page;
// VITE_CONVEX_URL (e.g. in .env.local) points it elsewhere, as under `npm run dev`.
const convexUrl =
  import.meta.env.VITE_CONVEX_URL ?? (import.meta.env.DEV ? "http://127.0.0.1:3210" : window.location.origin);
const convex = new ConvexReactClient(convexUrl);

ReactDOM.createRoot(document.getElementById("root")!).render(
  <React.StrictMode>
    <DevAuthProvider url={convexUrl}>
      <ConvexProviderWithAuth client={convex} useAuth={useAuthFromDevIssuer}>
        <App />
      </ConvexProviderWithAuth>
    </DevAuthProvider>
  </React.StrictMode>,
);
