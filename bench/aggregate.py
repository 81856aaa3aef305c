#!/usr/bin/env python3
"""Aggregate Pulsebase (pulsebase-bench) and PocketBase (peer bench.py) runs side by side.

For every figure: the median over runs of each run's figure, with the spread (min-max over runs),
as the PocketBase peer's aggregate.py does; then Pulsebase/PocketBase ratios per scenario, the
aims of DESIGN and issues 2-4, and one latency-distribution PNG per fan-out (and per-user) row.

Usage: aggregate.py --pulsebase DIR [--pocketbase DIR] --out DIR
  DIR/run-*.json are the runs; writes OUT/summary.md, OUT/summary.json and OUT/*.png.
"""
import argparse
import glob
import json
import os
import statistics
import sys


def load_runs(d):
    runs = []
    for p in sorted(glob.glob(os.path.join(d, "run-*.json"))):
        with open(p) as f:
            runs.append(json.load(f))
    return runs


def agg(runs, key):
    vals = [r.get("metrics", {}).get(key) for r in runs]
    vals = [v for v in vals if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if not vals:
        return None
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "n": len(vals)}


def f(x, nd=1):
    if x is None:
        return "—"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 10 and nd > 1:
        return f"{x:.1f}"
    return f"{x:.{nd}f}"


def cell(a, nd=1):
    if a is None:
        return "—"
    if a["n"] == 1 or a["min"] == a["max"]:
        return f(a["median"], nd)
    return f"{f(a['median'], nd)} ({f(a['min'], nd)}–{f(a['max'], nd)})"


def ratio(p, q, better):
    """Pulsebase / PocketBase of the medians, and by how much that is better or worse."""
    if p is None or q is None or not q["median"] or not p["median"]:
        return "—"
    r = p["median"] / q["median"]
    good = r >= 1 if better == "higher" else r <= 1
    factor = max(r, 1 / r)
    return f"{r:.3g} ({factor:.3g}× {'better' if good else 'worse'})"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pulsebase", required=True)
    ap.add_argument("--pocketbase", default="")
    ap.add_argument("--out", required=True)
    ap.add_argument("--machine", default="", help="machine.json written by run.sh")
    args = ap.parse_args()
    pr = load_runs(args.pulsebase)
    qr = load_runs(args.pocketbase) if args.pocketbase else []
    if not pr:
        sys.exit(f"no Pulsebase runs in {args.pulsebase}")
    P = lambda k: agg(pr, k)  # noqa: E731
    Q = lambda k: agg(qr, k)  # noqa: E731
    out = []
    w = out.append
    machine = {}
    if args.machine and os.path.exists(args.machine):
        with open(args.machine) as fh:
            machine = json.load(fh)
    w(f"# Pulsebase vs PocketBase — {len(pr)} Pulsebase run(s), {len(qr)} PocketBase run(s)\n")
    if machine:
        w(f"Machine: {machine.get('cpu', '?')}, {machine.get('cpus', '?')} vCPUs, {machine.get('mem_gib', '?')} GiB, "
          f"kernel {machine.get('kernel', '?')}. Load average at start: {machine.get('loadavg_start', '?')}, "
          f"at end: {machine.get('loadavg_end', '?')}.\n")
    loads = [(r.get("loadavg_start"), r.get("loadavg_end")) for r in pr]
    w("Pulsebase runs' load averages (start → end): " + "; ".join(f"{a} → {b}" for a, b in loads) + "\n")
    w("Each cell: median over runs of that run's figure (min–max over runs). Ratio = Pulsebase ÷ PocketBase "
      "of the medians.\n")
    summary = {"pulsebase": {}, "pocketbase": {}, "ratios": {}}

    def keep(name, pk, qk):
        summary["pulsebase"][name] = P(pk) if pk else None
        summary["pocketbase"][name] = Q(qk) if qk else None

    # ---- mutations
    w("## Authenticated single-document writes (closed loop, each client its own user)\n")
    w("| clients | Pulsebase WebSocket /s | Pulsebase HTTP /s | PocketBase HTTP creates/s | ratio WS | ratio HTTP |"
      " WS p50 / p99 ms (response) | WS resolved p50 / p99 ms | HTTP p50 / p99 ms | PocketBase p50 / p99 ms | server CPU WS / HTTP / PB |")
    w("|---|---|---|---|---|---|---|---|---|---|---|")
    for c in (1, 8, 32):
        ws, ht, pb = P(f"mutations.ws.c{c}.per_s"), P(f"mutations.http.c{c}.per_s"), Q(f"create.c{c}.per_s")
        keep(f"mutations.ws.c{c}.per_s", f"mutations.ws.c{c}.per_s", f"create.c{c}.per_s")
        keep(f"mutations.http.c{c}.per_s", f"mutations.http.c{c}.per_s", f"create.c{c}.per_s")
        w(f"| {c} | {cell(ws, 0)} | {cell(ht, 0)} | {cell(pb, 0)} | {ratio(ws, pb, 'higher')} | {ratio(ht, pb, 'higher')} "
          f"| {cell(P(f'mutations.ws.c{c}.p50_ms'), 2)} / {cell(P(f'mutations.ws.c{c}.p99_ms'), 2)} "
          f"| {cell(P(f'mutations.ws.c{c}.resolved_p50_ms'), 2)} / {cell(P(f'mutations.ws.c{c}.resolved_p99_ms'), 2)} "
          f"| {cell(P(f'mutations.http.c{c}.p50_ms'), 2)} / {cell(P(f'mutations.http.c{c}.p99_ms'), 2)} "
          f"| {cell(Q(f'create.c{c}.p50_ms'), 2)} / {cell(Q(f'create.c{c}.p99_ms'), 2)} "
          f"| {cell(P(f'mutations.ws.c{c}.server_cpu'), 2)} / {cell(P(f'mutations.http.c{c}.server_cpu'), 2)} / {cell(Q(f'create.c{c}.server_cpu'), 2)} |")
    w("")
    w("### In-process (no network): through the Committer, and indexed point queries over 100,000 documents\n")
    w("| figure | value |")
    w("|---|---|")
    for kind, label in (("native", "native insert closure (`Database::mutate_blocking`)"),
                        ("rhai", "Rhai `todos:addTodo` (`App::run_mutation`)")):
        for c in (1, 8, 32):
            a = P(f"committer.{kind}.c{c}.per_s")
            if a:
                w(f"| {label}, {c} caller(s): mutations/s | {cell(a, 0)} |")
                w(f"| {label}, {c} caller(s): p50 / p99 ms | {cell(P(f'committer.{kind}.c{c}.p50_ms'), 3)} / "
                  f"{cell(P(f'committer.{kind}.c{c}.p99_ms'), 3)} |")
    for kind, label in (("rhai_index", "`bench:todoByUser` (Rhai, index by_user, `.first()`)"),
                        ("raw_get", "`QueryTxn::get(id)` (engine only)")):
        w(f"| point query {label}: p50 / p99 / max ms | {cell(P(f'committer.point.{kind}.p50_ms'), 3)} / "
          f"{cell(P(f'committer.point.{kind}.p99_ms'), 3)} / {cell(P(f'committer.point.{kind}.max_ms'), 3)} |")
    w(f"| bulk load into the 100,000-document table: documents/s | {cell(P('committer.point.load_docs_per_s'), 0)} |")
    w("")

    # ---- growth (issue 17): cost against the size of the table
    sizes = sorted({int(k.split(".")[1][1:]) for r in pr for k in r.get("metrics", {}) if k.startswith("growth.d")})
    if sizes:
        w("### How cost grows with the table (in-process; `todos` filled to each size)\n")
        w("| documents | database / WAL MiB | point query (Rhai, index) p50 / p99 ms | get by id p50 / p99 ms | `todos:addTodo` ×32 mutations/s | its p50 / p99 ms |")
        w("|---|---|---|---|---|---|")
        for d in sizes:
            k = f"growth.d{d}"
            w(f"| {d:,} | {cell(P(k + '.db_mib'), 0)} / {cell(P(k + '.wal_mib'), 0)} "
              f"| {cell(P(k + '.point_p50_ms'), 3)} / {cell(P(k + '.point_p99_ms'), 3)} "
              f"| {cell(P(k + '.get_p50_ms'), 3)} / {cell(P(k + '.get_p99_ms'), 3)} "
              f"| {cell(P(k + '.mutations_per_s'), 0)} "
              f"| {cell(P(k + '.mutation_p50_ms'), 2)} / {cell(P(k + '.mutation_p99_ms'), 2)} |")
        w("")

    # ---- fanout
    w("## Fan-out: S sessions of one user on one query, one writer (push latency = writer's send → subscriber's kernel receive)\n")
    w("| S | rate /s | Pulsebase push p50 / p99 / max ms | PocketBase push p50 / p99 / max ms | ratio p99 | delivered / expected (Pulsebase) | PocketBase delivered / expected | Pulsebase push bytes | server CPU Pulsebase / PB | writer call p50 ms Pulsebase / PB |")
    w("|---|---|---|---|---|---|---|---|---|---|")
    rows = sorted({(k.split(".")[1], k.split(".")[2]) for r in pr for k in r.get("metrics", {}) if k.startswith("fanout.")},
                  key=lambda t: (int(t[0][1:]), float(t[1][1:].replace("p", "."))))
    for s, rt in rows:
        k = f"fanout.{s}.{rt}"
        p99p, p99q = P(k + ".push_p99_ms"), Q(k + ".push_p99_ms")
        keep(k + ".push_p99_ms", k + ".push_p99_ms", k + ".push_p99_ms")
        w(f"| {int(s[1:]):,} | {rt[1:].replace('p', '.')} | {cell(P(k + '.push_p50_ms'))} / {cell(p99p)} / {cell(P(k + '.push_max_ms'))} "
          f"| {cell(Q(k + '.push_p50_ms'))} / {cell(p99q)} / {cell(Q(k + '.push_max_ms'))} | {ratio(p99p, p99q, 'lower')} "
          f"| {cell(P(k + '.delivered'), 0)} / {cell(P(k + '.expected'), 0)} | {cell(Q(k + '.delivered'), 0)} / {cell(Q(k + '.expected'), 0)} "
          f"| {cell(P(k + '.push_bytes'), 0)} | {cell(P(k + '.server_cpu'), 2)} / {cell(Q(k + '.server_cpu'), 2)} "
          f"| {cell(P(k + '.create_p50_ms'), 2)} / {cell(Q(k + '.create_p50_ms'), 2)} |")
    w("")

    # ---- per-user
    w("## Per-user: U sessions, each its own user on its own todos; writer round-robin over users, each write by its owner\n")
    w("| U | rate /s | achieved /s Pulsebase / PB | Pulsebase push p50 / p99 / max ms | PocketBase push p50 / p99 / max ms | ratio p99 | delivered / expected Pulsebase | PB delivered / expected | leaks Pulsebase / PB | server CPU Pulsebase / PB |")
    w("|---|---|---|---|---|---|---|---|---|---|")
    rows = sorted({(k.split(".")[1], k.split(".")[2]) for r in pr for k in r.get("metrics", {}) if k.startswith("per-user.")},
                  key=lambda t: (int(t[0][1:]), float(t[1][1:].replace("p", "."))))
    for s, rt in rows:
        k, kq = f"per-user.{s}.{rt}", f"peruser.{s}.{rt}"
        p99p, p99q = P(k + ".push_p99_ms"), Q(kq + ".push_p99_ms")
        keep(k + ".push_p99_ms", k + ".push_p99_ms", kq + ".push_p99_ms")
        rate = float(rt[1:].replace("p", "."))
        rat = ratio(p99p, p99q, "lower") if rate <= 10 else "— (PocketBase saturated; not quoted)"
        w(f"| {int(s[1:]):,} | {rate:g} | {cell(P(k + '.achieved_rate'))} / {cell(Q(kq + '.achieved_rate'))} "
          f"| {cell(P(k + '.push_p50_ms'))} / {cell(p99p)} / {cell(P(k + '.push_max_ms'))} "
          f"| {cell(Q(kq + '.push_p50_ms'))} / {cell(p99q)} / {cell(Q(kq + '.push_max_ms'))} | {rat} "
          f"| {cell(P(k + '.delivered'), 0)} / {cell(P(k + '.expected'), 0)} | {cell(Q(kq + '.delivered'), 0)} / {cell(Q(kq + '.expected'), 0)} "
          f"| {cell(P(k + '.leaks'), 0)} / {cell(Q(kq + '.leaks'), 0)} | {cell(P(k + '.server_cpu'), 2)} / {cell(Q(kq + '.server_cpu'), 2)} |")
    w("")

    # ---- idle
    w("## Idle authenticated sessions holding one subscription: server RSS\n")
    w("| sessions | Pulsebase RSS MiB | PocketBase RSS MiB | ratio | Pulsebase KiB/session | PocketBase KiB/connection |")
    w("|---|---|---|---|---|---|")
    levels = sorted({int(k.split(".")[1]) for r in pr for k in r.get("metrics", {}) if k.startswith("idle.") and k.endswith(".rss_mib")})
    for lv in levels:
        p, q = P(f"idle.{lv}.rss_mib"), Q(f"idle.{lv}.rss_mib")
        keep(f"idle.{lv}.rss_mib", f"idle.{lv}.rss_mib", f"idle.{lv}.rss_mib")
        w(f"| {lv:,} | {cell(p)} | {cell(q)} | {ratio(p, q, 'lower')} | {cell(P(f'idle.{lv}.kib_per_conn')) if lv else '—'} "
          f"| {cell(Q(f'idle.{lv}.kib_per_conn')) if lv else '—'} |")
    w("")

    # ---- refresh, cold start, auth
    w("## Token refresh on live sessions (Pulsebase only: PocketBase cannot re-authenticate a live SSE stream)\n")
    w("| figure | value |")
    w("|---|---|")
    for k, label, nd in (("sessions", "sessions", 0), ("refreshes_per_s", "refreshes/s (each a fresh token, a cache miss)", 0),
                         ("refresh_errors", "refresh errors", 0),
                         ("server_cpu_baseline", "server CPU, baseline (cores)", 3), ("server_cpu_refreshing", "server CPU, refreshing (cores)", 3),
                         ("cpu_us_per_refresh", "server CPU per refresh (µs)", 0),
                         ("ack_p50_ms", "refresh round trip p50 ms", 2), ("ack_p99_ms", "refresh round trip p99 ms", 2),
                         ("writer_baseline.push_p99_ms", "concurrent writer push p99 ms, baseline", 2),
                         ("writer_refreshing.push_p99_ms", "concurrent writer push p99 ms, refreshing", 2),
                         ("writer_refreshing.push_max_ms", "concurrent writer push max ms, refreshing", 2)):
        w(f"| {label} | {cell(P('refresh.' + k), nd)} |")
    w("")
    w("## Cold start\n")
    p, q = P("cold-start.first_query_ms"), Q("coldstart.first_query_ms")
    keep("coldstart.first_query_ms", "cold-start.first_query_ms", "coldstart.first_query_ms")
    w("| figure | Pulsebase (50 functions) | PocketBase (no user functions) | ratio |")
    w("|---|---|---|---|")
    w(f"| exec → first authenticated query answered, ms | {cell(p)} | {cell(q)} | {ratio(p, q, 'lower')} |")
    w(f"| exec → ready (Pulsebase: ready line; PocketBase: /api/health 200), ms | {cell(P('cold-start.ready_ms'))} | {cell(Q('coldstart.health_ms'))} | {ratio(P('cold-start.ready_ms'), Q('coldstart.health_ms'), 'lower')} |")
    w(f"| RSS right after start, MiB | {cell(P('cold-start.rss_mib'))} | ~28 (peer README) | |")
    w("")
    w("## Token validation and config reload (Pulsebase)\n")
    w("| figure | value |")
    w("|---|---|")
    for k in sorted({k for r in pr for k in r.get("metrics", {}) if k.startswith("auth.verify.")}):
        label = {
            "a": "cache-hit verify: validations/s (one core)",
            "b": "cold RS256 verify, token cache off: validations/s (one core)",
            "c": "auth::verify_with_keys alone: validations/s (one core)",
            "d": "cold verify handed to spawn_blocking one call at a time: validations/s",
            "e": "burst of 2,000 cold verifies inline on a 2-worker runtime: validations/s",
            "f": "burst of 2,000 cold verifies via spawn_blocking: validations/s",
            "g": "burst of 2,000 cold verifies via spawn_blocking, one at a time: validations/s",
        }.get(k.split(".")[2], k)
        w(f"| {label} | {cell(P(k), 0)} |")
    sync = P('auth.reload.sync_ms')
    sync_txt = "< 1 (the server prints whole ms: 0)" if sync and sync["max"] == 0 else cell(sync)
    w(f"| auth.config.toml reload (server's own timing), ms | {sync_txt} |")
    w(f"| HTTP mutation latency, quiet: p50 / p99 / max ms | {cell(P('auth.reload.quiet.p50_ms'), 3)} / {cell(P('auth.reload.quiet.p99_ms'), 2)} / {cell(P('auth.reload.quiet.max_ms'), 2)} |")
    w(f"| HTTP mutation latency, within 250 ms of an edit: p50 / p99 / max ms | {cell(P('auth.reload.during.p50_ms'), 3)} / {cell(P('auth.reload.during.p99_ms'), 2)} / {cell(P('auth.reload.during.max_ms'), 2)} |")
    w("")

    # ---- issue 12: slow actions in flight and WebSocket mutation latency
    if any(k.startswith("actions.") for r in pr for k in r.get("metrics", {})):
        w("## Slow actions in flight (Pulsebase)\n")
        w("Closed-loop WebSocket writers (`todos:addTodo`), measured in one server run without actions, then while "
          "the actions (`bench:slowFetch`) each wait on a local endpoint that never answers.\n")
        w("| figure | without actions | with the actions in flight |")
        w("|---|---|---|")
        w(f"| actions in flight | 0 | {cell(P('actions.in_flight'), 0)} |")
        for k, label in (("p50_ms", "mutation → MutationResponse p50 ms"), ("p99_ms", "mutation → MutationResponse p99 ms"),
                         ("resolved_p50_ms", "mutation → covering Transition p50 ms"), ("resolved_p99_ms", "mutation → covering Transition p99 ms")):
            w(f"| {label} | {cell(P('actions.quiet.' + k), 3)} | {cell(P('actions.busy.' + k), 3)} |")
        w(f"| server RSS, MiB | {cell(P('actions.quiet.rss_mib'))} | {cell(P('actions.busy.rss_mib'))} |")
        w(f"| server threads | {cell(P('actions.quiet.threads'), 0)} | {cell(P('actions.busy.threads'), 0)} |")
        w(f"| writer errors | {cell(P('actions.quiet.errors'), 0)} | {cell(P('actions.busy.errors'), 0)} |")
        w(f"| seconds for every action to answer once the endpoint closed | | {cell(P('actions.drain_s'), 2)} |")
        w("")

    # ---- issue 12 part 2: scheduled functions
    if any(k.startswith("scheduler.") for r in pr for k in r.get("metrics", {})):
        w("## Scheduled functions (Pulsebase)\n")
        w("`bench:scheduleNow` schedules `bench:scheduledNoop` with `runAfter(0)`. Saturated: 32 closed-loop HTTP clients "
          "for 5 s, throughput from the first call until no job is pending. Quiet: one job every 10 ms. Delay = a job's "
          "`scheduledTime` to the start of its execution, read back from `_scheduled_functions`.\n")
        w("| figure | value |")
        w("|---|---|")
        w(f"| jobs executed per second, 32 clients | {cell(P('scheduler.jobs_per_s'), 0)} |")
        w(f"| delay while saturated (first 8,000 jobs), p50 / p99 ms | {cell(P('scheduler.busy.delay_p50_ms'), 2)} / {cell(P('scheduler.busy.delay_p99_ms'), 2)} |")
        w(f"| delay when not saturated, p50 / p99 / max ms | {cell(P('scheduler.quiet.delay_p50_ms'), 2)} / {cell(P('scheduler.quiet.delay_p99_ms'), 2)} / {cell(P('scheduler.quiet.delay_max_ms'), 2)} |")
        w("")

    # ---- issue 5: live sync under `pulsebase dev`, webhooks
    w("## Live sync and webhooks (Pulsebase, Node clients)\n")
    w("| figure | value |")
    w("|---|---|")
    w(f"| save a function file → first subscriber receives the re-run result, median / p95 / max ms | "
      f"{cell(P('dev-sync.median_ms'))} / {cell(P('dev-sync.p95_ms'))} / {cell(P('dev-sync.max_ms'))} |")
    w(f"| of which the server's load + swap (its own \"synced in N ms\"), median ms | {cell(P('dev-sync.server_reload_median_ms'))} |")
    w(f"| Svix-signed `user.updated` webhooks applied per second (4 keep-alive connections) | {cell(P('webhook.rps'), 0)} |")
    w(f"| webhook latency p50 / p99 ms | {cell(P('webhook.p50_ms'), 2)} / {cell(P('webhook.p99_ms'), 2)} |")
    w(f"| webhooks refused or failed | {cell(P('webhook.failed'), 0)} |")
    w("")

    # ---- issue 13: file storage, export/import, backups
    if P('files.upload_mib_s'):
        w("## File storage, export, import and backups (Pulsebase, `bench/files_io.mjs`)\n")
        w("| figure | value |")
        w("|---|---|")
        w(f"| 100 MiB file: upload / download MiB/s (`cp` of the same file on the same disk) | "
          f"{cell(P('files.upload_mib_s'), 0)} / {cell(P('files.download_mib_s'), 0)} ({cell(P('files.cp_mib_s'), 0)}) |")
        if P('files.cp_durable_mib_s'):
            w(f"| durable copy of that file (`cp`, then `sync --data`: on disk, as an upload's fsync leaves it), MiB/s | "
              f"{cell(P('files.cp_durable_mib_s'), 0)} |")
        w(f"| `pulsebase import` of small documents (one .jsonl, no server), documents/s | {cell(P('files.import_docs_s'), 0)} |")
        w(f"| `pulsebase export` of them, documents/s | {cell(P('files.export_docs_s'), 0)} |")
        w(f"| HTTP mutation latency, 4 writers, quiet: p50 / p99 ms | {cell(P('files.quiet.p50_ms'), 2)} / {cell(P('files.quiet.p99_ms'), 2)} |")
        w(f"| the same while `pulsebase export` runs: p50 / p99 ms | {cell(P('files.during_export.p50_ms'), 2)} / {cell(P('files.during_export.p99_ms'), 2)} |")
        w(f"| the same while `pulsebase backup` runs: p50 / p99 ms | {cell(P('files.during_backup.p50_ms'), 2)} / {cell(P('files.during_backup.p99_ms'), 2)} |")
        w(f"| export / backup of the table beside the live server, s | {cell(P('files.live_export_s'), 1)} / {cell(P('files.live_backup_s'), 1)} |")
        w("")

    # ---- aims
    w("## Aims (DESIGN, issues 2–4, 7)\n")
    w("| aim | figure | median | met? |")
    w("|---|---|---|---|")

    def aim(label, key, target, better):
        a = P(key)
        if a is None:
            w(f"| {label} | `{key}` | — | not measured |")
            return
        ok = a["median"] >= target if better == "higher" else a["median"] <= target
        w(f"| {label} | `{key}` | {cell(a, 3 if abs(a['median']) < 10 else 1)} | {'yes' if ok else '**no**'} |")
        summary.setdefault("aims", {})[key] = {"target": target, "median": a["median"], "met": ok}
    aim("≥ 20,000 mutations/s (committer, 32 callers, native)", "committer.native.c32.per_s", 20000, "higher")
    aim("≥ 20,000 mutations/s (committer, 32 callers, Rhai)", "committer.rhai.c32.per_s", 20000, "higher")
    aim("≥ 20,000 mutations/s (WebSocket, 32 clients)", "mutations.ws.c32.per_s", 20000, "higher")
    aim("≥ 20,000 mutations/s (HTTP, 32 clients)", "mutations.http.c32.per_s", 20000, "higher")
    aim("indexed point query p99 ≤ 1 ms", "committer.point.rhai_index.p99_ms", 1, "lower")
    aim("fan-out p99 ≤ 50 ms at 10,000", "fanout.s10000.r0p5.push_p99_ms", 50, "lower")
    aim("fan-out p99 ≤ 100 ms at 19,000 (issue 17)", "fanout.s19000.r0p5.push_p99_ms", 100, "lower")
    for n in ("10000", "19000"):
        floor = P(f"fanout-floor.s{n}.r0p5.push_p99_ms")
        if floor:
            w(f"| machine floor for fan-out at {int(n):,} (socket writes only, no server logic; `fanout-floor`) | `fanout-floor.s{n}.r0p5.push_p99_ms` | {cell(floor, 1)} | — |")
    aim("per-user p99 ≤ 10 ms at 500/s", "per-user.s1000.r500.push_p99_ms", 10, "lower")
    aim("nothing lost, per-user 500/s", "per-user.s1000.r500.lost", 0, "lower")
    aim("19,000 idle sessions ≤ 1 GiB", "idle.19000.rss_mib", 1024, "lower")
    aim("19,000 idle sessions ≤ 256 MiB (issue 17)", "idle.19000.rss_mib", 256, "lower")
    aim("cold start ≤ 100 ms (50 functions)", "cold-start.first_query_ms", 100, "lower")
    aim("save → push ≤ 300 ms in `pulsebase dev` (median)", "dev-sync.median_ms", 300, "lower")
    aim("≥ 20,000 RS256 validations/s on one core (cache hits)", "auth.verify.a.per_s", 20000, "higher")
    aim("≥ 20,000 RS256 validations/s on one core (cold, no cache)", "auth.verify.b.per_s", 20000, "higher")
    aim("≥ 5,000 mutations/s in PostgreSQL (WebSocket, 32 clients; issue 16)", "postgres.mutations.ws.c32.per_s", 5000, "higher")
    aim("writes accepted again ≤ 10 s after kill -9 of a node (issue 16)", "nodes.kill_longest_write_pause_ms", 10000, "lower")
    cross, single = P("nodes.cross_node_push_p99_ms"), P("nodes.sqlite_single_node_push_p99_ms")
    if cross and single:
        ok = cross["median"] <= single["median"] + 15
        w(f"| cross-node push p99 within 15 ms of one node (issue 16) | `nodes.cross_node_push_p99_ms` | {cross['median']:.0f} (one node: {single['median']:.0f}) | {'yes' if ok else '**no**'} |")
    else:
        w("| cross-node push p99 within 15 ms of one node (issue 16) | `nodes.cross_node_push_p99_ms` | — | not measured |")
    aim("scale-out (3 nodes × 19,000 idle sessions): every session receives every commit (issue 16)", "postgres.scale-out.lost", 0, "lower")
    held, p50, p99, rss = (P(f"postgres.scale-out.{k}") for k in ("sessions", "push_p50_ms", "push_p99_ms", "nodes_rss_mib"))
    if held and p99:
        w(f"| scale-out figure (no aim): sessions held / push p50 / p99 / nodes' RSS | `postgres.scale-out.*` | {held['median']:,.0f} / {p50['median']:.0f} ms / {p99['median']:.0f} ms / {rss['median']:.0f} MiB | — |")
    w("")

    text = "\n".join(out)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "summary.md"), "w") as fh:
        fh.write(text + "\n")
    all_keys = sorted({k for r in pr for k in r.get("metrics", {})})
    summary["all_pulsebase"] = {k: agg(pr, k) for k in all_keys}
    all_q = sorted({k for r in qr for k in r.get("metrics", {})})
    summary["all_pocketbase"] = {k: agg(qr, k) for k in all_q}
    with open(os.path.join(args.out, "summary.json"), "w") as fh:
        json.dump(summary, fh, indent=1)
    print(text)
    plots(pr, qr, args.out)


def plots(pr, qr, out):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib not available: no plots)")
        return
    for scen, qscen in (("fanout", "fanout"), ("per-user", "peruser")):
        keys = {}
        for r in pr:
            for row in r.get("scenarios", {}).get(scen, {}).get("rows", []):
                keys.setdefault((row["subscribers"], row["rate_per_s"]), []).append(row.get("push_quantiles_ms", []))
        for (s, rate), qs in sorted(keys.items()):
            fig, ax = plt.subplots(figsize=(7, 4.2))
            pcts = [i / 2 for i in range(201)]
            for i, q in enumerate(qs):
                if q:
                    ax.plot([max(v, 0.01) for v in q], pcts, color="tab:blue", alpha=0.8,
                            label="Pulsebase (WebSocket), per run" if i == 0 else None)
            for j, r in enumerate(qr):
                for row in r.get(qscen, []):
                    if row.get("subscribers") == s and abs(row.get("rate_per_s", -1) - rate) < 1e-9:
                        pm = row.get("push_ms", {})
                        xs = [pm.get(k) for k in ("p50", "p90", "p99", "max")]
                        if None not in xs:
                            ax.plot(xs, [50, 90, 99, 100], "o--", color="tab:orange", alpha=0.8,
                                    label="PocketBase (SSE) p50/p90/p99/max, per run" if j == 0 else None)
            ax.set_xscale("log")
            ax.set_xlabel("push latency, ms (writer send → subscriber kernel receive), log scale")
            ax.set_ylabel("percentile")
            ax.set_ylim(0, 101)
            ax.grid(True, which="both", alpha=0.3)
            ax.set_title(f"{scen}: {s:,} subscribers, writer {rate:g}/s — latency distribution")
            ax.legend(loc="lower right", fontsize=8)
            name = f"{scen}-s{s}-r{('%g' % rate).replace('.', 'p')}.png"
            fig.tight_layout()
            fig.savefig(os.path.join(out, name), dpi=110)
            plt.close(fig)
            print(f"wrote {os.path.join(out, name)}")


if __name__ == "__main__":
    main()
