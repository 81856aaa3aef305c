// The seeds' App: <Authenticated>, <Unauthenticated> and <AuthLoading> from convex/react pick
// the view; everything inside <Authenticated> may call functions that require a user.
// Only the sign-in form and the sign-out button come from the dev issuer (./devAuth); with
// Clerk they become <SignInButton /> and <UserButton /> (see README.md).
import { useEffect, useState, type FormEvent } from "react";
import {
  Authenticated,
  AuthLoading,
  Unauthenticated,
  useConvexAuth,
  useMutation,
  useQuery,
} from "convex/react";
import { api } from "../../../functions/_generated/api";
import type { Id } from "../../../functions/_generated/dataModel";
import { useDevAuth } from "./devAuth";

export default function App() {
  return (
    <main>
      <h1>Todos</h1>
      <Unauthenticated>
        <SignInForm />
      </Unauthenticated>
      <Authenticated>
        <SignedInHeader />
        <Todos />
      </Authenticated>
      <AuthLoading>
        <p data-testid="auth-loading">Still loading…</p>
      </AuthLoading>
    </main>
  );
}

/** Stands in for Clerk's <SignInButton />: pick any user id and name. */
function SignInForm() {
  const { signIn, user } = useDevAuth();
  const [sub, setSub] = useState(user?.sub ?? "user_1");
  const [name, setName] = useState(user?.name ?? "Ada Lovelace");
  const [email, setEmail] = useState(user?.email ?? "");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function submit(event: FormEvent) {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await signIn({ sub: sub.trim(), name: name.trim() || sub.trim(), email: email.trim() || undefined });
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    } finally {
      setBusy(false);
    }
  }

  return (
    <form className="card" data-testid="sign-in" onSubmit={submit}>
      <p>Signed out. Sign in with the dev issuer of <code>pulsebase dev</code> as any user:</p>
      {user && <p className="error">The server did not accept the token for {user.sub}; sign in again.</p>}
      <label>
        User id <input name="sub" value={sub} onChange={(e) => setSub(e.target.value)} required />
      </label>
      <label>
        Name <input name="name" value={name} onChange={(e) => setName(e.target.value)} />
      </label>
      <label>
        Email <input name="email" type="email" value={email} onChange={(e) => setEmail(e.target.value)} />
      </label>
      <button type="submit" disabled={busy || sub.trim() === ""}>
        Sign in
      </button>
      {error && <p className="error" role="alert">{error}</p>}
    </form>
  );
}

/** Stands in for Clerk's <UserButton />: who Pulsebase says you are, and a sign-out button. */
function SignedInHeader() {
  const { signOut } = useDevAuth();
  const { isAuthenticated } = useConvexAuth();
  const me = useQuery(api.users.getCurrentUser);
  const storeUser = useMutation(api.users.storeUser);
  const [userId, setUserId] = useState<Id<"users"> | null>(null);

  // The seeds' useStoreUserEffect: upsert the user document once per sign-in.
  const subject: string | undefined = me?.subject;
  useEffect(() => {
    if (!isAuthenticated || subject === undefined) return;
    let current = true;
    storeUser().then(
      (id: Id<"users">) => current && setUserId(id),
      () => current && setUserId(null),
    );
    return () => {
      current = false;
    };
  }, [isAuthenticated, subject, storeUser]);

  return (
    <header className="card">
      <span data-testid="current-user">
        {me === undefined ? "…" : me === null ? "anonymous" : `Signed in as ${me.name ?? me.subject} (${me.subject})`}
      </span>
      {userId && (
        <small data-testid="stored-user" title="users:storeUser">
          user document {userId}
        </small>
      )}
      <button type="button" onClick={signOut}>
        Sign out
      </button>
    </header>
  );
}

function Todos() {
  // Doc<"todos">[] | undefined: getMyTodos declares `returns: "array<doc<todos>>"`.
  const todos = useQuery(api.todos.getMyTodos);
  const addTodo = useMutation(api.todos.addTodo);
  const toggle = useMutation(api.todos.toggle);
  const [text, setText] = useState("");

  async function add(event: FormEvent) {
    event.preventDefault();
    const trimmed = text.trim();
    if (trimmed === "") return;
    setText("");
    await addTodo({ text: trimmed });
  }

  return (
    <section className="card">
      <form onSubmit={add}>
        <input
          data-testid="new-todo"
          placeholder="What needs doing?"
          value={text}
          onChange={(e) => setText(e.target.value)}
        />
        <button type="submit">Add</button>
      </form>
      {todos === undefined ? (
        <p>Loading todos…</p>
      ) : todos.length === 0 ? (
        <p data-testid="empty">No todos yet.</p>
      ) : (
        <ul data-testid="todos">
          {todos.map((todo) => (
            <li key={todo._id} data-testid="todo" className={todo.completed ? "done" : undefined}>
              <label>
                <input
                  type="checkbox"
                  checked={todo.completed}
                  onChange={() => void toggle({ id: todo._id })}
                />
                <span>{todo.text}</span>
              </label>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}
