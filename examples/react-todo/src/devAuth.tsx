// Sign-in against the built-in dev issuer of `pulsebase dev`, shaped like Clerk so that
// swapping it for Clerk is a three-line change (see README.md):
//
//   <DevAuthProvider url>          plays the part of  <ClerkProvider publishableKey>
//   useDevAuth()                   plays the part of  Clerk's useAuth() / useUser()
//   useAuthFromDevIssuer           plays the part of  the hook ConvexProviderWithClerk builds
//                                   from Clerk's useAuth, and is given to ConvexProviderWithAuth
//
// The dev issuer signs a token for any user id: `POST {url}/dev-issuer/token {sub, name, email}`
// answers `{token, expiresAt}`. The signed-in user (not the token) is kept in localStorage, so
// every tab of the browser profile shares it and a sign-out in one tab signs out all of them,
// as with Clerk.
import {
  createContext,
  useCallback,
  useContext,
  useEffect,
  useMemo,
  useRef,
  useState,
  type ReactNode,
} from "react";

export type DevUser = { sub: string; name: string; email?: string };

type Minted = { token: string; expiresAt: number };

type DevAuth = {
  /** Always true here: the user is read synchronously from localStorage. */
  isLoaded: boolean;
  user: DevUser | null;
  /** Mints a first token (so a server that is down is reported at once), then signs in. */
  signIn(user: DevUser): Promise<void>;
  signOut(): void;
  /** Clerk's getToken: the held token, or a freshly minted one when `skipCache` or near expiry. */
  getToken(options?: { skipCache?: boolean }): Promise<string | null>;
};

const STORAGE_KEY = "pulsebase-dev-user";
/** Mint a new token when the held one has less than this left (ms). */
const REFRESH_MARGIN_MS = 60_000;

const DevAuthContext = createContext<DevAuth | null>(null);

function readStoredUser(): DevUser | null {
  try {
    const raw = window.localStorage.getItem(STORAGE_KEY);
    if (!raw) return null;
    const parsed = JSON.parse(raw) as Partial<DevUser>;
    return typeof parsed.sub === "string" && parsed.sub !== ""
      ? { sub: parsed.sub, name: parsed.name ?? parsed.sub, email: parsed.email }
      : null;
  } catch {
    return null;
  }
}

async function mint(url: string, user: DevUser): Promise<Minted> {
  const response = await fetch(`${url}/dev-issuer/token`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ sub: user.sub, name: user.name, email: user.email || undefined }),
  });
  if (!response.ok) {
    throw new Error(`the dev issuer answered ${response.status}: ${await response.text()}`);
  }
  return (await response.json()) as Minted;
}

export function DevAuthProvider({ url, children }: { url: string; children: ReactNode }) {
  const [user, setUser] = useState<DevUser | null>(readStoredUser);
  const held = useRef<Minted | null>(null);

  // Another tab signed in or out: follow it.
  useEffect(() => {
    const onStorage = (event: StorageEvent) => {
      if (event.key !== STORAGE_KEY && event.key !== null) return;
      held.current = null;
      setUser(readStoredUser());
    };
    window.addEventListener("storage", onStorage);
    return () => window.removeEventListener("storage", onStorage);
  }, []);

  const signIn = useCallback(
    async (next: DevUser) => {
      const minted = await mint(url, next);
      held.current = minted;
      window.localStorage.setItem(STORAGE_KEY, JSON.stringify(next));
      setUser(next);
    },
    [url],
  );

  const signOut = useCallback(() => {
    held.current = null;
    window.localStorage.removeItem(STORAGE_KEY);
    setUser(null);
  }, []);

  const getToken = useCallback(
    async ({ skipCache = false }: { skipCache?: boolean } = {}) => {
      if (user === null) return null;
      const current = held.current;
      if (!skipCache && current && current.expiresAt * 1000 - Date.now() > REFRESH_MARGIN_MS) {
        return current.token;
      }
      const minted = await mint(url, user);
      held.current = minted;
      return minted.token;
    },
    [url, user],
  );

  const value = useMemo(
    () => ({ isLoaded: true, user, signIn, signOut, getToken }),
    [user, signIn, signOut, getToken],
  );
  return <DevAuthContext.Provider value={value}>{children}</DevAuthContext.Provider>;
}

export function useDevAuth(): DevAuth {
  const auth = useContext(DevAuthContext);
  if (auth === null) throw new Error("useDevAuth must be used inside <DevAuthProvider>");
  return auth;
}

/**
 * The `useAuth` hook for `ConvexProviderWithAuth`, written the way `ConvexProviderWithClerk`
 * adapts Clerk's `useAuth`: `fetchAccessToken` changes identity only when the user changes,
 * which makes the Convex client authenticate again.
 */
export function useAuthFromDevIssuer() {
  const { isLoaded, user, getToken } = useDevAuth();
  const fetchAccessToken = useCallback(
    async ({ forceRefreshToken }: { forceRefreshToken: boolean }) => {
      try {
        return await getToken({ skipCache: forceRefreshToken });
      } catch {
        return null;
      }
    },
    [getToken],
  );
  return useMemo(
    () => ({ isLoading: !isLoaded, isAuthenticated: user !== null, fetchAccessToken }),
    [isLoaded, user, fetchAccessToken],
  );
}
